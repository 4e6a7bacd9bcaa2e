"""AVATAR/pose/: an identity's head pose from audio, self-contained, and the generator that
`speak --pose generated` and `eval-pose` run.

Files:
  database.npz   the audio-pose database (database.py)
  refiner.npz    the Pose Refiner's parameters by leaf path (refiner.py)
  config.json    format_version, the task config (window, overlap, retrieval, model), the
                 refiner's dims, and the sha256 of both .npz files
config.json is written last (each file atomically), so a folder is read whole or refused:
a missing, damaged or replaced file is a ModelFileError naming it.

`PoseGenerator.generate(audio, n_frames, fps, expr)`: log-mel features of the clip on the
database's frame grid -> retrieval (retrieval.py) -> refinement (refiner.refine_track, with
the expression track the motion model produced, or the identity's mean expression when none
is given) -> pose offsets + the identity's mean pose, resampled to `fps` when the database
was tracked at another rate. Any length: retrieval covers the clip with overlapping units
whatever its duration, so audio longer than the training video needs nothing special.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.motion.pose.database import PoseDatabase, expression_matrix, load_database, save_database
from flashtalker_jax.motion.pose.refiner import PoseRefiner, RefinerDims, expr_stats, refine_track
from flashtalker_jax.motion.pose.retrieval import Retriever, normalise_audio
from flashtalker_jax.utils.files import atomic_path, read_npz, sha256_file

FORMAT_VERSION = 1
POSE_DIR = "pose"
FILES = ("database.npz", "refiner.npz")
RETRAIN = "rebuild it with `flashtalker adapt-pose --data DIR --avatar A`"




def flat_params(module: nnx.Module) -> dict[str, np.ndarray]:
    from flashtalker_jax.train.state import key_path_str

    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(module, nnx.Param))[0]
    return {key_path_str(path): np.asarray(value) for path, value in leaves}


def save_pose_folder(folder: str | os.PathLike, db: PoseDatabase, refiner: PoseRefiner,
                     task: ml_collections.ConfigDict) -> Path:
    """Write AVATAR/pose (module docstring); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_database(db, folder / "database.npz")
    with atomic_path(folder / "refiner.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **flat_params(refiner))
    meta = {"format_version": FORMAT_VERSION, "task": json.loads(json.dumps(task.to_dict(), default=str)),
            "dims": dataclasses.asdict(refiner.dims), "sha256": {f: sha256_file(folder / f) for f in FILES}}
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return folder


def _read_meta(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelFileError(path, "pose folder config missing", RETRAIN)
    try:
        meta = json.loads(path.read_text())
        version = meta.get("format_version")
        missing = [k for k in ("task", "dims", "sha256") if k not in meta]
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFileError(path, f"cannot read the pose config ({type(exc).__name__}: {exc})", RETRAIN) from exc
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"pose folder format_version {version!r}, this version reads {FORMAT_VERSION}",
                             RETRAIN)
    if missing:
        raise ModelFileError(path, f"pose config lacks {', '.join(missing)}", RETRAIN)
    for name in FILES:
        file = folder / name
        if not file.is_file():
            raise ModelFileError(file, "missing from the pose folder", RETRAIN)
        if sha256_file(file) != meta["sha256"].get(name):
            raise ModelFileError(file, "sha256 differs from the one config.json recorded (damaged or replaced)",
                                 RETRAIN)
    return meta


def _refiner_from(dims: RefinerDims, arrays: dict[str, np.ndarray], path: Path) -> PoseRefiner:
    """The refiner of `dims` holding the saved arrays (built abstractly, then filled)."""
    from flashtalker_jax.train.state import key_path_str

    graph, state = nnx.split(nnx.eval_shape(lambda: PoseRefiner(dims, nnx.Rngs(0))))
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    expected = {key_path_str(p): v.shape for p, v in flat}
    if set(expected) != set(arrays) or any(arrays[k].shape != s for k, s in expected.items()):
        raise ModelFileError(path, "parameters do not fit the refiner of config.json "
                             f"(missing {sorted(set(expected) - set(arrays))}, "
                             f"unexpected {sorted(set(arrays) - set(expected))})", RETRAIN)
    filled = jax.tree_util.tree_map_with_path(lambda p, v: jnp.asarray(arrays[key_path_str(p)], v.dtype), state)
    return nnx.merge(graph, filled)


class PoseGenerator:
    """An identity's database + retriever + refiner (module docstring)."""

    def __init__(self, db: PoseDatabase, refiner: PoseRefiner | None, task: ml_collections.ConfigDict):
        self.db, self.refiner, self.task = db, refiner, task
        self.retriever = Retriever(db, task.overlap, task.top_k, task.continuity_weight)
        self.expr_mean, self.expr_std = expr_stats(db)

    @property
    def pose_keys(self) -> tuple[str, ...]:
        return self.db.pose_keys

    def offsets(self, frame_audio: np.ndarray, expr: np.ndarray | None = None, refine: bool | None = None
                ) -> np.ndarray:
        """Normalised audio (T, A) on the database's grid, expression features (T, n_expr + 3)
        raw or None -> pose offsets (T, P). refine None: the folder's task.refine."""
        retrieved = self.retriever.retrieve(frame_audio)
        refine = bool(self.task.get("refine", True)) if refine is None else refine
        if not refine or self.refiner is None:
            return retrieved
        t = frame_audio.shape[0]
        expr = np.broadcast_to(self.expr_mean, (t, self.expr_mean.shape[0])) if expr is None else expr
        refined = refine_track(self.refiner, retrieved / self.db.pose_std, (expr - self.expr_mean) / self.expr_std,
                               frame_audio, self.task.overlap)
        return refined * self.db.pose_std

    def generate(self, audio, n_frames: int, fps: float, expr: np.ndarray | None = None,
                 jaw: np.ndarray | None = None, refine: bool | None = None) -> dict[str, np.ndarray]:
        """{pose key: (n_frames, 3)} for an audio path or Clip. expr (n_frames, E) and jaw
        (n_frames, 3): the motion model's output at `fps` (None: the identity's mean)."""
        from flashtalker_jax.audio.extractor import FeatureExtractor

        rows = FeatureExtractor.load("log_mel").features(audio, self.db.fps)
        frame_audio = normalise_audio(self.db, rows)
        t = frame_audio.shape[0]
        feats = None
        if expr is not None:
            jaw = np.zeros((expr.shape[0], 3), np.float32) if jaw is None else jaw
            feats = resample_frames(expression_matrix(expr, jaw, self.db.expr.shape[1] - 3), fps, self.db.fps, t)
        offsets = self.offsets(frame_audio, feats, refine)
        return self.db.absolute(resample_frames(offsets, self.db.fps, fps, n_frames))


def resample_frames(track: np.ndarray, source_fps: float, target_fps: float, n_frames: int) -> np.ndarray:
    """(T, P) frames at source_fps -> (n_frames, P) at target_fps: linear interpolation in
    time (the identity when the rates match; the end repeats when the track is a frame short)."""
    src = np.arange(track.shape[0]) / source_fps
    dst = np.arange(n_frames) / target_fps
    if source_fps == target_fps:
        idx = np.minimum(np.arange(n_frames), track.shape[0] - 1)
        return np.asarray(track[idx], np.float32)
    return np.stack([np.interp(dst, src, track[:, j]) for j in range(track.shape[1])], 1).astype(np.float32)


def load_pose_generator(folder: str | os.PathLike) -> PoseGenerator:
    """The generator of an AVATAR/pose folder (or the avatar folder holding one)."""
    folder = Path(folder)
    if (folder / POSE_DIR).is_dir():
        folder = folder / POSE_DIR
    if not folder.is_dir():
        raise ModelFileError(folder, "no pose folder (speak --pose generated needs AVATAR/pose)",
                             "build it with `flashtalker adapt-pose --data DIR --avatar A`")
    meta = _read_meta(folder)
    db = load_database(folder / "database.npz")
    arrays = read_npz(folder / "refiner.npz", "pose refiner parameters", RETRAIN)
    try:
        dims = RefinerDims(**meta["dims"])
    except TypeError as exc:
        raise ModelFileError(folder / "config.json", f"refiner dims unreadable ({exc})", RETRAIN) from exc
    return PoseGenerator(db, _refiner_from(dims, arrays, folder / "refiner.npz"),
                         ml_collections.ConfigDict(meta["task"]))
