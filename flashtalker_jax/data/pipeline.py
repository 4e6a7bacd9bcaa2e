"""Grain pipeline over the TalkingHeads array_record files: windows of frames with audio.

A window is `window` consecutive timesteps of one identity (never crossing identities,
splits or gaps), started every `stride` timesteps. The sampler shuffles window indices
with a seed and shards them by JAX process (`ShardByJaxProcess`), so each host reads its
own windows; batches are stacked windows. The loader's iterator state (a small JSON
blob) goes into checkpoints (e.g. Orbax `grain.PyGrainCheckpointHandler`) and restores
the stream exactly.

A batch is a dict of arrays with leading axes (batch, window):
  image (B, T, H, W, 3) uint8, mask (B, T, H, W, 1) uint8, FLAME params (B, T, n),
  K (B, T, 3, 3), c2w and w2c (B, T, 4, 4), identity (B, T), timestep (B, T),
  head_mask (B, T) PNG bytes (b"" without head masks: tfds_builder.py),
  audio (B, T * sample_rate / fps) float32 and audio_features (B, 2 T, D) log-mel rows
  (2 per frame, `window_log_mel`: equal to the whole clip's rows of those frames).

Motion pretraining reads the same records through flashtalker_jax/motion/records.py.
"""
from __future__ import annotations

from pathlib import Path

import grain.python as grain
import ml_collections
import numpy as np

from flashtalker_jax.errors import ConfigError, InputFileError


def window_starts(timesteps_per_identity: list[list[int]], window: int, stride: int) -> np.ndarray:
    """Record index of each window's first frame (M,), for records sorted by
    (identity, timestep); a window needs `window` consecutive timesteps of one identity."""
    starts, offset = [], 0
    for timesteps in timesteps_per_identity:
        t = np.asarray(timesteps, np.int64)
        for first in range(0, len(t) - window + 1, stride):
            if t[first + window - 1] - t[first] == window - 1:
                starts.append(offset + first)
        offset += len(t)
    return np.asarray(starts, np.int64)


class WindowSource(grain.RandomAccessDataSource):
    """Random access to windows: item i stacks records starts[i] .. starts[i] + window - 1."""

    def __init__(self, records, starts: np.ndarray, window: int, name: str):
        self._records, self._starts, self._window = records, np.asarray(starts), int(window)
        self._name = name

    def __repr__(self) -> str:
        # Grain compares repr() of the source when restoring an iterator state.
        return f"WindowSource({self._name}, windows={len(self._starts)}, window={self._window})"

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        first = int(self._starts[index])
        frames = [self._records[first + j] for j in range(self._window)]
        out = {k: np.stack([np.asarray(f[k]) for f in frames]) for k in frames[0]}
        out["audio"] = out["audio"].reshape(-1)
        return out


def window_log_mel(audio: np.ndarray, before: np.ndarray, after: np.ndarray, sample_rate: int,
                   fps: float, config: ml_collections.ConfigDict | None = None) -> np.ndarray:
    """Log-mel rows (steps_per_frame T, D) of a window's audio (T frames of samples, (T S,)),
    equal to `log_mel_features` of the whole clip cut to those frames.

    A row's analysis window reaches n_fft/2 - hop/2 samples past its frame, so the rows are
    computed with the neighbouring timesteps' samples `before` and `after` (S,) around the
    window (zeros outside the clip, as the whole-clip padding) and those frames' rows dropped.
    """
    from flashtalker_jax.audio.features import log_mel_features, num_video_frames
    from flashtalker_jax.audio.io import default_audio_config

    config = default_audio_config() if config is None else config
    steps = config.steps_per_frame
    reach = config.log_mel.n_fft // 2 - int(round(sample_rate / (steps * fps))) // 2
    if reach > before.shape[0]:
        raise ConfigError(f"log_mel.n_fft={config.log_mel.n_fft} analyses {reach} samples past a frame, "
                          f"more than the one frame ({before.shape[0]} samples) of margin the records hold")
    frames = num_video_frames(audio.shape[0], sample_rate, fps)
    rows = log_mel_features(np.concatenate([before, audio, after]), sample_rate, fps, config)
    if rows.shape[0] != steps * (frames + 2):
        raise ValueError(f"window of {frames} frames gave {rows.shape[0]} audio feature rows")
    return rows[steps:steps * (frames + 1)]


class AddAudioFeatures(grain.MapTransform):
    """Log-mel features of the window's audio (2 rows per frame); drops the margins."""

    def __init__(self, sample_rate: int, fps: float):
        self.sample_rate, self.fps = sample_rate, fps

    def map(self, element: dict) -> dict:
        element = dict(element)
        margins = element.pop("audio_margins")                 # (T, 2, S)
        features = window_log_mel(element["audio"], margins[0, 0], margins[-1, 1], self.sample_rate, self.fps)
        return {**element, "audio_features": features}


def rebuild_hint(data_dir: str | Path) -> str:
    """The fix for a missing, old or damaged build: the command that writes it."""
    return f"build it from the identity folders: `flashtalker data build-tfds SOURCE --out {data_dir}`"


def one_rate(data_dir: str | Path, meta) -> tuple[int, float]:
    """(sample_rate, fps) of a build whose identities share them: windows of audio need one
    rate. InputFileError naming the identities' rates otherwise (a build mixing rates is
    for e2v pretraining, which reads frames alone)."""
    if meta["sample_rate"] is None or meta["fps"] is None:
        rates = dict(zip(meta["identities"], map(tuple, meta["rates"])))
        raise InputFileError(data_dir, f"its identities disagree on (sample_rate, fps): {rates}; windows of "
                                       "audio need one rate", "build the identities of one rate on their own")
    return int(meta["sample_rate"]), float(meta["fps"])


def open_split(data_dir: str | Path, split: str):
    """The prepared TalkingHeads builder under `data_dir`, checked to hold `split`."""
    from flashtalker_jax.data.tfds_builder import TalkingHeads

    builder = TalkingHeads(data_dir=str(data_dir))
    if not builder.is_prepared():
        found = sorted(p.name for p in (Path(data_dir) / builder.name).glob("[0-9]*"))
        other = f" (found version {', '.join(found)}; this code reads {builder.version})" if found else ""
        raise InputFileError(data_dir, f"no prepared TalkingHeads dataset here{other}", rebuild_hint(data_dir))
    if split not in builder.info.splits:
        raise InputFileError(data_dir, f"dataset has no split {split!r} (has {list(builder.info.splits)})")
    return builder


def data_loader(**kwargs) -> grain.DataLoader:
    """grain.DataLoader(**kwargs), its absl flags marked parsed first: with worker processes
    grain reads its flags (their defaults suit us), and a program started by argparse
    rather than absl.app never parsed them (UnparsedFlagAccessError at the first batch)."""
    from absl import flags

    if kwargs.get("worker_count", 0) and not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return grain.DataLoader(**kwargs)


def make_loader(data_dir: str | Path, split: str, cfg: ml_collections.ConfigDict,
                num_epochs: int | None = None,
                shard_options: grain.ShardOptions | None = None) -> grain.DataLoader:
    """A grain DataLoader of batched windows from a built TalkingHeads dataset.

    cfg: the `pipeline` section of configs/data_synth.py (window, stride, batch_size,
    seed, worker_count). shard_options: default ShardByJaxProcess (one shard per JAX
    process, equal sizes); pass grain.ShardOptions(i, n) to pick a shard explicitly.
    """
    builder = open_split(data_dir, split)
    meta = builder.info.metadata
    starts = window_starts(meta["timesteps"][split], cfg.window, cfg.stride)
    if len(starts) == 0:
        raise InputFileError(data_dir, f"split {split!r} has no run of {cfg.window} consecutive frames")
    source = WindowSource(builder.as_data_source(split=split), starts, cfg.window,
                          name=f"{builder.info.full_name}:{split}")
    sampler = grain.IndexSampler(
        num_records=len(source), shard_options=shard_options or grain.ShardByJaxProcess(drop_remainder=True),
        shuffle=True, num_epochs=num_epochs, seed=int(cfg.seed))
    return data_loader(
        data_source=source, sampler=sampler,
        operations=[AddAudioFeatures(*one_rate(data_dir, meta)),
                    grain.Batch(int(cfg.batch_size), drop_remainder=True)],
        worker_count=int(cfg.worker_count))
