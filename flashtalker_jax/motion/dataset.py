"""Speaking identities for the motion models: per-sentence FLAME motion + audio features.

Reads VHAP-layout folders through their index (`data.vhap.read_vhap_index`: frames, fps,
splits, FLAME parameter and audio paths; no images), then expr/jaw_pose of each
flame_param/*.npz, the shape of canonical_flame_param.npz and the audio file's features. A
split's frames are cut into contiguous runs ("sentences": the synthetic splits hold out
whole sentences).

Motion per frame = [expr[:n_expr] | jaw_pose (3)]. Audio features are computed once per
clip on the video grid (steps_per_frame rows per frame, any kind: log-mel or wav2vec2)
and sliced per sentence.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from flashtalker_jax.data import vhap
from flashtalker_jax.errors import InputFileError

# feature_fn(audio_path, fps) -> (steps_per_frame * n_frames, D)
FeatureFn = Callable[[Path, float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One contiguous run of frames: motion (T, P) raw, audio (s T, D) raw, first frame."""
    identity: str
    identity_index: int
    motion: np.ndarray
    audio: np.ndarray
    shape: np.ndarray
    start: int


@dataclasses.dataclass(frozen=True)
class Identity:
    name: str
    index: int
    shape: np.ndarray                    # (S,) FLAME shape
    splits: dict[str, list[Sentence]]


def _flame_frame(path: Path, n_expr: int) -> np.ndarray:
    arrays = vhap.load_npz(path, keys=("expr", "jaw_pose"))
    expr = vhap.frame_vector(path, "expr", arrays["expr"])
    jaw = vhap.frame_vector(path, "jaw_pose", arrays["jaw_pose"], 3)
    if expr.shape[0] < n_expr:
        raise InputFileError(path, f"key 'expr' has {expr.shape[0]} coefficients, the model needs {n_expr}",
                             "lower task.n_expr or re-export with more expression components")
    return np.concatenate([expr[:n_expr], jaw])


def contiguous_runs(frames: Sequence[int]) -> list[np.ndarray]:
    """Split sorted frame indices into runs of consecutive frames."""
    frames = np.sort(np.asarray(frames, np.int64))
    if frames.size == 0:
        return []
    cuts = np.nonzero(np.diff(frames) != 1)[0] + 1
    return np.split(frames, cuts)


def read_identity(root: str | os.PathLike, index: int, n_expr: int, feature_fn: FeatureFn,
                  steps_per_frame: int = 2, splits: Sequence[str] = ("train", "val", "test")) -> Identity:
    folder = vhap.read_vhap_index(root)
    root = folder.root
    paths = {int(t): p for t, p in zip(folder.timesteps, folder.flame_paths)}
    n = max(paths) + 1
    if sorted(paths) != list(range(n)):
        raise InputFileError(root / "transforms.json", "timesteps are not 0..N-1 without gaps")
    motion = np.stack([_flame_frame(paths[t], n_expr) for t in range(n)])
    if folder.audio_path is None:
        raise InputFileError(root / vhap.AUDIO_FILE, "audio file not found")
    audio = feature_fn(folder.audio_path, folder.fps)
    if audio.shape[0] < steps_per_frame * n:
        raise InputFileError(folder.audio_path, f"features cover {audio.shape[0] // steps_per_frame} frames, "
                                                f"the motion has {n}")
    if folder.canonical_path is None:
        raise InputFileError(root / vhap.CANONICAL_FILE, "missing", "the identity's FLAME shape is read from it")
    canonical = folder.canonical_path
    shape = vhap.shape_vector(canonical, vhap.load_npz(canonical, "canonical FLAME parameters", ("shape",))["shape"])
    out = {}
    for split in splits:
        out[split] = [Sentence(root.name, index, motion[run], audio[steps_per_frame * run[0]:
                               steps_per_frame * (run[-1] + 1)], shape, int(run[0]))
                      for run in contiguous_runs(folder.split_timesteps(split))]
    return Identity(name=root.name, index=index, shape=shape, splits=out)


@dataclasses.dataclass(frozen=True)
class Normaliser:
    """Per-channel mean and std (D,) of a feature or motion track."""
    mean: np.ndarray
    std: np.ndarray

    def normalise(self, x):
        return (x - self.mean) / self.std

    def denormalise(self, x):
        return x * self.std + self.mean

    def save(self, path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @staticmethod
    def load(path) -> "Normaliser":
        arrays = vhap.load_npz(Path(path), "normalisation statistics", ("mean", "std"))
        mean, std = arrays["mean"], arrays["std"]
        if mean.ndim != 1 or std.shape != mean.shape:
            raise InputFileError(path, f"keys 'mean' {mean.shape} and 'std' {std.shape}: expected two (D,) arrays",
                                 "the motion run is damaged: retrain it or copy it again")
        return Normaliser(mean=mean, std=std)

    @staticmethod
    def of(rows: np.ndarray, min_std: float = 1e-3) -> "Normaliser":
        """From (N, D) rows; channels that barely move get std min_std (no blow-up)."""
        return Normaliser(mean=rows.mean(0).astype(np.float32),
                          std=np.maximum(rows.std(0), min_std).astype(np.float32))


class CropIterator:
    """Endless batches of random windows over sentences, reproducible from (seed, batch index).

    Each example: a window of `window` frames starting at s (uniform over starts leaving at
    least `min_frames` real frames; frames past the sentence end are padding), plus the
    `context` frames before s when s >= context (else context_mask False). Every process
    draws the same global batch and keeps its rows. State: {"batch": i} (JSON).

    `augment(rows, reference_level, rng)` (audio/augment.py RecordingAugment), when given,
    changes each example's raw audio rows before normalisation; its generator is seeded
    from the same (seed, batch index) draw for the global batch, so augmentation is
    reproducible and identical on every process. The reference level is the sentence's.
    The state is the same on every process, so a checkpoint resumes on any process count.
    """

    global_state = True

    def __init__(self, sentences: Sequence[Sentence], batch_size: int, window: int, context: int,
                 min_frames: int, steps_per_frame: int, seed: int, motion_norm, audio_norm,
                 process_index: int = 0, process_count: int = 1, augment=None):
        if not sentences:
            raise InputFileError("dataset", "no sentences in the chosen split")
        if batch_size % process_count:
            raise ValueError(f"batch {batch_size} does not split over {process_count} processes")
        self.sentences = list(sentences)
        self.batch_size, self.window, self.context = batch_size, window, context
        self.min_frames, self.s, self.seed = min_frames, steps_per_frame, seed
        self.motion_norm, self.audio_norm = motion_norm, audio_norm
        self.local = batch_size // process_count
        self.offset = process_index * self.local
        self.augment = augment
        self.levels = {}
        self.index = 0

    def _level(self, k: int) -> float:
        from flashtalker_jax.audio.augment import speech_level

        if k not in self.levels:
            self.levels[k] = speech_level(self.sentences[k].audio)
        return self.levels[k]

    def example(self, k: int, start: int, aug_seed: int = 0) -> dict[str, np.ndarray]:
        """Window of sentence k starting at frame `start` (aug_seed seeds its augmentation)."""
        sentence = self.sentences[k]
        c, w, s = self.context, self.window, self.s
        motion = self.motion_norm.normalise(sentence.motion).astype(np.float32)
        t = motion.shape[0]
        lo, hi = start - c, min(start + w, t)
        first = max(lo, 0)
        raw = sentence.audio[s * first:s * hi]
        if self.augment is not None:
            raw = self.augment(raw, self._level(k), np.random.default_rng(aug_seed))
        frames = np.zeros((c + w, motion.shape[1]), np.float32)
        rows = np.zeros((s * (c + w), raw.shape[1]), np.float32)
        frames[first - lo:hi - lo] = motion[first:hi]
        rows[s * (first - lo):s * (hi - lo)] = self.audio_norm.normalise(raw)
        return {"motion": frames[c:], "context": frames[:c], "context_mask": np.bool_(start >= c and c > 0),
                "audio": rows, "frame_mask": np.arange(start, start + w) < t,
                "identity": np.int32(sentence.identity_index), "shape": sentence.shape}

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self.seed, self.index))
        self.index += 1
        picks = rng.integers(0, len(self.sentences), self.batch_size)
        lasts = np.array([max(self.sentences[i].motion.shape[0] - self.min_frames, 0) for i in picks])
        starts = rng.integers(0, lasts + 1)  # drawn for the global batch on every process
        aug_seeds = rng.integers(0, 2 ** 62, self.batch_size)
        examples = [self.example(int(picks[k]), int(starts[k]), int(aug_seeds[k]))
                    for k in range(self.offset, self.offset + self.local)]
        return {key: np.stack([e[key] for e in examples]) for key in examples[0]}

    def get_state(self) -> dict:
        return {"batch": self.index}

    def set_state(self, state: dict) -> None:
        self.index = int(state["batch"])
