"""Motion pretraining input from a built TalkingHeads dataset, read through grain.

`flashtalker pretrain-a2e --data D` has one input interface with two implementations:
  D = identity folders       motion/dataset.py CropIterator (everything in memory; small data)
  D = `flashtalker data build-tfds` output (D/talking_heads/...)
                             `make_data` here: grain over the array_record files of the
                             train split, for data sets larger than memory.
Both yield the same batch (CropIterator's format, per process):
  motion (B, W, n_expr + 3) and context (B, C, n_expr + 3) float32, normalised
  [expr[:n_expr] | jaw_pose]; context_mask (B,) bool; audio (B, s (C + W), D) float32,
  normalised log-mel rows (s = steps_per_frame); frame_mask (B, W) bool; identity (B,)
  int32 (embedding row = 1 + position in the dataset's identity list); shape (B, S) float32.
Padding (frames past the end of a run, missing context) is 0 after normalisation.

Windows: a run is a stretch of consecutive train timesteps of one identity (records are
sorted by (identity, timestep), so a run is a range of record indices). Every
`task.window_stride`-th start leaving at least task.min_frames real frames is a window;
its C context frames are the run's frames before the start (context_mask when all C
exist, as CropIterator). The grain sampler shuffles windows uniformly with
task.data_seed and shards them by JAX process (the trainer's process index and count:
ShardByJaxProcess); CropIterator picks a sentence, then a start, so long runs weigh more
here. The iterator state is grain's (per process): checkpoints restore the stream
exactly on the same process count (train/checkpoint.py refuses another count).

Audio: log-mel rows per window, data/pipeline.py window_log_mel, equal to the whole-clip
rows CropIterator slices (records carry one neighbouring frame of audio on each side).
wav2vec2 is refused: it attends over the whole clip, so per-window features would differ
from the in-memory route's. Augmentation (task.augment) uses grain's per-record generator;
its reference level is the window's speech level (the whole sentence is never read).

Normalisation statistics come from a seeded sample of task.norm_windows train windows
(their real frames), computed when training starts rather than stored by build-tfds: they
depend on choices the build does not know (n_expr, feature settings, identities used),
and a bounded sample keeps start-up cost independent of the dataset's size.

Only the diffusion prior ("a2e_prior") reads built datasets: Audio2Param's identity
templates need each identity's mean training motion, read from identity folders.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import chex
import grain.python as grain
import ml_collections
import numpy as np

from flashtalker_jax.data.pipeline import data_loader, one_rate, open_split, window_log_mel
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.motion.dataset import Identity, Normaliser

SPLIT = "train"


@dataclasses.dataclass(frozen=True)
class Windows:
    """(M,) record indices: each window's first frame and its run's [start, stop)."""
    first: np.ndarray
    run_start: np.ndarray
    run_stop: np.ndarray


def motion_windows(timesteps_per_identity: list[list[int]], min_frames: int, stride: int,
                   identities: int) -> Windows:
    """Windows of the first `identities` identities, for records sorted by (identity, timestep)."""
    first, run_start, run_stop, offset = [], [], [], 0
    for ident, timesteps in enumerate(timesteps_per_identity):
        t = np.asarray(timesteps, np.int64)
        if ident < identities and t.size:
            bounds = [0, *(np.nonzero(np.diff(t) != 1)[0] + 1), t.size]
            for a, b in zip(bounds[:-1], bounds[1:]):
                starts = range(offset + a, offset + b - min_frames + 1, stride)
                first += starts
                run_start += [offset + a] * len(starts)
                run_stop += [offset + b] * len(starts)
        offset += t.size
    return Windows(*(np.asarray(x, np.int64) for x in (first, run_start, run_stop)))


class RecordWindows(grain.RandomAccessDataSource):
    """Window i as raw arrays: motion (C + W, P) and audio rows (s (C + W), D), zero where
    `valid` (C + W,) is False, plus context_mask, identity and shape."""

    def __init__(self, records, windows: Windows, window: int, context: int, n_expr: int,
                 audio_config: ml_collections.ConfigDict, sample_rate: int, fps: float, name: str):
        self._records, self.windows, self._name = records, windows, name
        self.window, self.context, self.n_expr = window, context, n_expr
        self.audio_config, self.sample_rate, self.fps = audio_config, sample_rate, fps
        self.steps = audio_config.steps_per_frame

    def __repr__(self) -> str:
        # Grain compares repr() of the source when restoring an iterator state.
        return (f"RecordWindows({self._name}, windows={len(self)}, window={self.window}, "
                f"context={self.context}, n_expr={self.n_expr})")

    def __len__(self) -> int:
        return len(self.windows.first)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        first = int(self.windows.first[index])
        c, w, s = self.context, self.window, self.steps
        lo = first - c
        a, b = max(lo, int(self.windows.run_start[index])), min(first + w, int(self.windows.run_stop[index]))
        frames = [self._records[j] for j in range(a, b)]
        real = np.stack([np.concatenate([f["expr"][:self.n_expr], f["jaw_pose"]]) for f in frames])
        rows = window_log_mel(np.concatenate([f["audio"] for f in frames]), frames[0]["audio_margins"][0],
                              frames[-1]["audio_margins"][1], self.sample_rate, self.fps, self.audio_config)
        chex.assert_shape(real, (b - a, self.n_expr + 3))
        chex.assert_shape(rows, (s * (b - a), self.audio_config.log_mel.n_mels + 1))
        motion = np.zeros((c + w, real.shape[1]), np.float32)
        audio = np.zeros((s * (c + w), rows.shape[1]), np.float32)
        valid = np.zeros(c + w, bool)
        motion[a - lo:b - lo], audio[s * (a - lo):s * (b - lo)], valid[a - lo:b - lo] = real, rows, True
        return {"motion": motion, "audio": audio, "valid": valid, "context_mask": np.bool_(c > 0 and a == lo),
                "identity": np.int32(int(frames[0]["identity"]) + 1),
                "shape": np.asarray(frames[0]["shape"], np.float32)}


class NormaliseWindow(grain.RandomMapTransform):
    """Raw window -> CropIterator's example: augment the real audio rows, normalise, split
    off the context. The generator is grain's, seeded per record from the sampler seed."""

    def __init__(self, context: int, steps_per_frame: int, motion_norm: Normaliser, audio_norm: Normaliser,
                 augment=None):
        self.context, self.steps = context, steps_per_frame
        self.motion_norm, self.audio_norm, self.augment = motion_norm, audio_norm, augment

    def random_map(self, element: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from flashtalker_jax.audio.augment import speech_level

        valid, c = element["valid"], self.context
        real_rows = np.repeat(valid, self.steps)
        raw = element["audio"][real_rows]
        if self.augment is not None:
            raw = self.augment(raw, speech_level(raw), rng)
        motion = np.where(valid[:, None], self.motion_norm.normalise(element["motion"]), 0.0).astype(np.float32)
        audio = np.zeros_like(element["audio"])
        audio[real_rows] = self.audio_norm.normalise(raw)
        return {"motion": motion[c:], "context": motion[:c], "context_mask": element["context_mask"],
                "audio": audio, "frame_mask": valid[c:], "identity": element["identity"],
                "shape": element["shape"]}


@dataclasses.dataclass(frozen=True)
class RecordData:
    """A built dataset opened for the motion task: its windows and identities."""
    source: RecordWindows
    identities: list[Identity]
    audio_dim: int


def _check_task(task: ml_collections.ConfigDict, audio_config: ml_collections.ConfigDict) -> None:
    if task.name != "a2e_prior":
        raise ConfigError(f"task.name={task.name!r} cannot pretrain from a built TFDS dataset "
                          "(Audio2Param's identity templates need each identity's whole motion): "
                          "pass --data a folder of identity folders")
    if task.features != "log_mel":
        raise ConfigError(f"task.features={task.features!r}: a built TFDS dataset gives log_mel features per "
                          "window (wav2vec2 attends over whole clips): pass --data a folder of identity folders")
    if task.model.steps_per_frame != audio_config.steps_per_frame:
        raise ConfigError(f"task.model.steps_per_frame={task.model.steps_per_frame} but the audio features "
                          f"give {audio_config.steps_per_frame} rows per frame")


def open_records(task: ml_collections.ConfigDict) -> RecordData:
    """The train split of the built dataset task.dataset, windowed for task (a2e_prior)."""
    from flashtalker_jax.audio.io import default_audio_config

    audio_config = default_audio_config()
    _check_task(task, audio_config)
    import tensorflow_datasets as tfds

    data_dir = Path(task.dataset)
    builder = open_split(data_dir, SPLIT)
    meta = builder.info.metadata
    sample_rate, fps = one_rate(data_dir, meta)
    if sample_rate != audio_config.sample_rate:
        raise InputFileError(data_dir, f"audio is stored at {sample_rate} Hz, the features need "
                                       f"{audio_config.sample_rate} Hz", "rebuild from audio at that rate")
    names = list(meta["identities"])
    if task.max_identities > 0:
        names = names[:task.max_identities]
    if len(names) > task.model.num_identities:
        raise ConfigError(f"{len(names)} identities but task.model.num_identities={task.model.num_identities}")
    timesteps = meta["timesteps"][SPLIT]
    windows = motion_windows(timesteps, task.min_frames, int(task.window_stride), len(names))
    if len(windows.first) == 0:
        raise InputFileError(data_dir, f"split {SPLIT!r} has no run of {task.min_frames} consecutive frames "
                                       "of one identity (task.min_frames)")
    # Motion never looks at the images: they stay undecoded PNG bytes.
    records = builder.as_data_source(split=SPLIT, decoders={"image": tfds.decode.SkipDecoding(),
                                                            "mask": tfds.decode.SkipDecoding()})
    expr_size = np.asarray(records[int(windows.first[0])]["expr"]).shape[0]
    if expr_size < task.n_expr:
        raise InputFileError(data_dir, f"records hold {expr_size} expression coefficients, "
                                       f"task.n_expr={task.n_expr}")
    context = task.model.context
    source = RecordWindows(records, windows, task.model.window, context, task.n_expr, audio_config,
                           sample_rate, fps, name=f"{builder.info.full_name}:{SPLIT}")
    offsets = np.cumsum([0, *(len(t) for t in timesteps)])
    # Identities without train frames never reach a batch: no shape is needed for them.
    identities = [Identity(name, i + 1, np.asarray(records[int(offsets[i])]["shape"], np.float32)
                           if len(timesteps[i]) else np.zeros(0, np.float32), {})
                  for i, name in enumerate(names)]
    return RecordData(source, identities, audio_dim=audio_config.log_mel.n_mels + 1)


def sample_norms(source: RecordWindows, count: int, seed: int) -> tuple[Normaliser, Normaliser]:
    """(motion, audio) statistics of the real window frames of `count` windows drawn with `seed`."""
    picks = np.random.default_rng(seed).choice(len(source), min(count, len(source)), replace=False)
    motion, audio = [], []
    c, s = source.context, source.steps
    for index in np.sort(picks):
        item = source[int(index)]
        real = item["valid"][c:]
        motion.append(item["motion"][c:][real])
        audio.append(item["audio"][s * c:][np.repeat(real, s)])
    return Normaliser.of(np.concatenate(motion)), Normaliser.of(np.concatenate(audio))


def make_data_fn(data: RecordData, task: ml_collections.ConfigDict, motion_norm: Normaliser,
                 audio_norm: Normaliser, augment=None):
    """Task.make_data: (process_index, process_count) -> this process's grain batch iterator."""

    def make_data(process_index: int, process_count: int):
        if task.batch_size % process_count:
            raise ConfigError(f"task.batch_size={task.batch_size} does not split over {process_count} processes")
        sampler = grain.IndexSampler(
            num_records=len(data.source), shuffle=True, num_epochs=None, seed=int(task.data_seed),
            shard_options=grain.ShardOptions(process_index, process_count, drop_remainder=True))
        normalise = NormaliseWindow(data.source.context, data.source.steps, motion_norm, audio_norm, augment)
        loader = data_loader(
            data_source=data.source, sampler=sampler,
            operations=[normalise, grain.Batch(task.batch_size // process_count, drop_remainder=True)],
            worker_count=int(task.data_workers))
        return iter(loader)

    return make_data
