"""The audio-pose database of one identity (Talk2Me 4.3.2): its tracked video's head pose
and audio features, frame by frame, from which new audio retrieves pose windows.

Built from a VHAP folder (`build_database`): the frames of one split (train by default, so
the test split stays held out) are cut into contiguous runs; each run holds per frame
  pose    rotation (3) + translation (3) (+ neck_pose (3) when the tracker moved it),
          stored as OFFSETS from the identity's mean pose: windows retrieved from different
          moments then agree on the level they move around, and stitching only blends motion
  expr    the first n_expr expression coefficients + jaw_pose (3): the Pose Refiner's
          expression input (Talk2Me fuses pose with expression), kept so training needs
          nothing but this database
  audio   the log-mel rows the motion models compute (audio/extractor.FeatureExtractor,
          2 rows per video frame on the video grid), raw; audio_mean / audio_std over the
          database normalise them for the encoder
Windows of `window` frames start every `stride` frames inside a run (never across a gap
between runs: the two sides are different moments).

Saved as one .npz (`save_database` / `load_database`, ModelFileError naming the file when it
is damaged or inconsistent).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import chex
import numpy as np

from flashtalker_jax.errors import ConfigError, InputFileError, ModelFileError
from flashtalker_jax.utils.files import atomic_path, read_npz

POSE_KEYS = ("rotation", "translation", "neck_pose")   # neck_pose only when it moves
MIN_NECK_STD = 1e-6   # rad: a tracker that never fits the neck writes exact zeros
ARRAYS = ("poses", "expr", "audio", "runs", "pose_mean", "pose_std", "audio_mean", "audio_std",
          "pose_keys", "fps", "window", "stride")
REBUILD = "rebuild it with `flashtalker adapt-pose`"


@dataclasses.dataclass(frozen=True)
class PoseDatabase:
    """poses (T, P) offsets from pose_mean; expr (T, E); audio (steps * T, D) raw rows;
    runs (R, 2) [start, stop) frame ranges of contiguous runs in these arrays; pose_mean,
    pose_std (P,); audio_mean, audio_std (D,); pose_keys: the key of each 3-column block;
    fps; window (frames per unit); stride (frames between window starts)."""
    poses: np.ndarray
    expr: np.ndarray
    audio: np.ndarray
    runs: np.ndarray
    pose_mean: np.ndarray
    pose_std: np.ndarray
    audio_mean: np.ndarray
    audio_std: np.ndarray
    pose_keys: tuple[str, ...]
    fps: float
    window: int
    stride: int

    def __post_init__(self):
        t, p = self.poses.shape
        chex.assert_shape(self.expr, (t, None))
        chex.assert_shape(self.audio, (None, self.audio_mean.shape[0]))
        chex.assert_shape([self.pose_mean, self.pose_std], (p,))
        if p != 3 * len(self.pose_keys):
            raise ValueError(f"{p} pose columns for keys {self.pose_keys}")
        if self.audio.shape[0] % t:
            raise ValueError(f"{self.audio.shape[0]} audio rows for {t} frames")

    @property
    def frames(self) -> int:
        return self.poses.shape[0]

    @property
    def steps_per_frame(self) -> int:
        return self.audio.shape[0] // self.frames

    def window_starts(self) -> np.ndarray:
        """(W,) first frame of every database window (inside one run each)."""
        return np.concatenate([np.arange(a, b - self.window + 1, self.stride) for a, b in self.runs]
                              + [np.zeros(0, np.int64)]).astype(np.int64)

    def frame_audio(self) -> np.ndarray:
        """(T, steps * D) normalised audio, the rows of each frame side by side."""
        z = (self.audio - self.audio_mean) / self.audio_std
        return z.reshape(self.frames, -1).astype(np.float32)

    def absolute(self, offsets: np.ndarray) -> dict[str, np.ndarray]:
        """Offsets (T, P) -> {key: (T, 3)} absolute FLAME pose parameters."""
        poses = np.asarray(offsets, np.float32) + self.pose_mean
        return {k: poses[:, 3 * i:3 * i + 3] for i, k in enumerate(self.pose_keys)}


def pose_matrix(flame: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, P) pose columns of FLAME arrays at `rows` and their keys (neck_pose kept only if
    it moves anywhere in the sequence)."""
    keys = tuple(k for k in POSE_KEYS if k != "neck_pose" or float(np.std(flame[k][rows], 0).max()) > MIN_NECK_STD)
    return np.concatenate([np.asarray(flame[k][rows], np.float32) for k in keys], 1), keys


def expression_matrix(expr: np.ndarray, jaw: np.ndarray, n_expr: int) -> np.ndarray:
    """(T, n_expr + 3): the first n_expr coefficients (zero-padded if fewer) + jaw_pose."""
    expr = np.asarray(expr, np.float32)
    out = np.zeros((expr.shape[0], n_expr), np.float32)
    k = min(n_expr, expr.shape[1])
    out[:, :k] = expr[:, :k]
    return np.concatenate([out, np.asarray(jaw, np.float32)], 1)


def _runs(timesteps: np.ndarray) -> list[np.ndarray]:
    from flashtalker_jax.motion.dataset import contiguous_runs

    return contiguous_runs(timesteps)


def build_database(vhap_dir: str | os.PathLike, window: int, stride: int, n_expr: int, split: str = "train",
                   camera: int = 0, extractor=None) -> PoseDatabase:
    """The database of one identity's tracked folder, from the frames of `split` (module
    docstring). `extractor`: audio/extractor.FeatureExtractor (default log-mel), the
    motion models' features on the folder's own frame grid."""
    from flashtalker_jax.audio.extractor import FeatureExtractor
    from flashtalker_jax.data.vhap import read_vhap

    if window < 2 or not 1 <= stride <= window:
        raise ConfigError(f"pose database window={window}, stride={stride}: need window >= 2, 1 <= stride <= window")
    seq = read_vhap(vhap_dir)
    if seq.audio_path is None:
        raise InputFileError(seq.root, "no audio in the tracked folder", "the pose database pairs audio with pose")
    rows = seq.camera_rows(camera)                      # time order
    steps_of = {int(t): r for r, t in zip(rows, seq.timesteps[rows])}
    chosen = [np.asarray([steps_of[int(t)] for t in run if int(t) in steps_of]) for run in
              _runs(seq.split_timesteps(split))]
    chosen = [c for c in chosen if len(c) >= window]
    if not chosen:
        raise InputFileError(seq.root, f"no contiguous run of {window} frames in the {split} split",
                             "track a longer clip or lower task.window")
    extractor = extractor or FeatureExtractor.load("log_mel")
    feats = extractor.features(seq.audio_path, seq.fps)
    steps = extractor.config.steps_per_frame
    all_rows = np.concatenate(chosen)
    poses, keys = pose_matrix(seq.flame, all_rows)
    expr = expression_matrix(seq.flame["expr"][all_rows], seq.flame["jaw_pose"][all_rows], n_expr)
    times = seq.timesteps[all_rows]
    if steps * (int(times.max()) + 1) > feats.shape[0]:
        raise InputFileError(seq.audio_path, f"audio features cover {feats.shape[0] // steps} frames, "
                                             f"the track has {int(times.max()) + 1}")
    audio = feats[(steps * times[:, None] + np.arange(steps)).reshape(-1)]
    bounds = np.cumsum([0] + [len(c) for c in chosen])
    return finish_database(poses, expr, audio, np.stack([bounds[:-1], bounds[1:]], 1), keys, seq.fps, window, stride)


def finish_database(poses: np.ndarray, expr: np.ndarray, audio: np.ndarray, runs: np.ndarray,
                    keys: tuple[str, ...], fps: float, window: int, stride: int) -> PoseDatabase:
    """A database from absolute poses (T, P) and raw audio rows: the statistics, and poses
    stored as offsets from their mean. Standard deviations are floored so a still axis
    (or a silent band) does not divide by zero."""
    poses = np.asarray(poses, np.float32)
    mean = poses.mean(0)
    audio = np.asarray(audio, np.float32)
    return PoseDatabase(poses=poses - mean, expr=np.asarray(expr, np.float32), audio=audio,
                        runs=np.asarray(runs, np.int64), pose_mean=mean,
                        pose_std=np.maximum(poses.std(0), 1e-4).astype(np.float32),
                        audio_mean=audio.mean(0), audio_std=np.maximum(audio.std(0), 1e-3).astype(np.float32),
                        pose_keys=tuple(keys), fps=float(fps), window=int(window), stride=int(stride))


def save_database(db: PoseDatabase, path: str | os.PathLike) -> Path:
    path = Path(path)
    arrays = {f.name: getattr(db, f.name) for f in dataclasses.fields(db)}
    arrays["pose_keys"] = np.asarray(db.pose_keys)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_database(path: str | os.PathLike) -> PoseDatabase:
    """The database saved at `path`; ModelFileError naming it when it is missing, damaged or
    its arrays do not fit together."""
    a = read_npz(path, "pose database", REBUILD, ARRAYS)
    try:
        return PoseDatabase(poses=a["poses"], expr=a["expr"], audio=a["audio"], runs=a["runs"],
                            pose_mean=a["pose_mean"], pose_std=a["pose_std"], audio_mean=a["audio_mean"],
                            audio_std=a["audio_std"], pose_keys=tuple(str(k) for k in a["pose_keys"]),
                            fps=float(a["fps"]), window=int(a["window"]), stride=int(a["stride"]))
    except (ValueError, AssertionError, TypeError) as exc:
        raise ModelFileError(path, f"pose database arrays do not fit together ({exc})", REBUILD) from exc
