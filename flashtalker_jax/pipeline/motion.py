"""The motion stage of `speak`: audio file -> per-frame FLAME parameters.

Expression and jaw come from a saved motion run (`pretrain-a2e` / `adapt-a2e`: the GGTalker
diffusion prior or the Audio2Param baseline, see motion/inference.py). Head pose, neck and
eyes come from the identity's tracked video (`--pose-from`, played forward and backward
for long clips) or, with `still=True`, from its first frame only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from flashtalker_jax.pipeline.stream import MotionFn

POSE_KEYS = ("rotation", "neck_pose", "eyes_pose", "translation")


def camera_frames(data_dir: str | Path, camera: int = 0):
    """(the VHAP sequence, row indices of `camera`'s frames in time order) of a VHAP folder."""
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(data_dir)
    return seq, seq.camera_rows(camera)


def pose_track(data_dir: str | Path, still: bool = False, camera: int = 0) -> dict[str, np.ndarray]:
    """Head pose per timestep (one camera's frames, in time order) of a VHAP folder."""
    seq, rows = camera_frames(data_dir, camera)
    if still:
        rows = rows[:1]
    return {k: np.asarray(seq.flame[k][rows], np.float32) for k in POSE_KEYS}


def fit_length(motion: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim, or repeat the last row, so the motion has exactly n_frames rows (the feature
    grid and round(duration * fps) can differ by a frame at the end of the clip)."""
    if motion.shape[0] >= n_frames:
        return motion[:n_frames]
    return np.concatenate([motion, np.repeat(motion[-1:], n_frames - motion.shape[0], 0)])


def fit_chunks(chunks: Iterable[np.ndarray], n_frames: int) -> Iterator[np.ndarray]:
    """`fit_length` over a stream of row chunks: exactly n_frames rows in all."""
    done, last = 0, None
    for chunk in chunks:
        if done >= n_frames:
            return
        chunk = chunk[:n_frames - done]
        if chunk.shape[0]:
            last = chunk[-1:]
            done += chunk.shape[0]
            yield chunk
    if done < n_frames:
        yield np.repeat(last, n_frames - done, 0)


def motion_from_run(run: str | Path, poses: dict[str, np.ndarray], fps: float, n_expr: int,
                    identity: str | None = None, seed: int = 0, sample_steps: int | None = None) -> MotionFn:
    """A MotionFn yielding, one model window at a time, expr (t, n_expr), jaw_pose (t, 3)
    and the pose keys (t, k) of consecutive frames.

    `identity`: a name the run was trained on selects its style row; otherwise row 0 ("any
    speaker"). The run's expressions are zero-padded or truncated to `n_expr`, the count the
    avatar's FLAME model drives. Features come from the run's `FeatureExtractor` (the one
    training used; windowed for wav2vec2); the MotionFn takes a decoded `audio.clip.Clip`
    or an audio path."""
    from flashtalker_jax.audio.extractor import FeatureExtractor
    from flashtalker_jax.motion.inference import Predictor, to_flame_params
    from flashtalker_jax.motion.tasks import load_motion_model

    loaded = load_motion_model(run)
    task = loaded.task
    predictor = Predictor(loaded, sample_steps)
    # No feature cache: a clip is streamed once.
    extractor = FeatureExtractor.load(task.features, task.wav2vec2_dir)
    row = loaded.identities.index(identity) + 1 if identity in loaded.identities else 0
    template = None
    if loaded.kind == "audio2param":
        template = loaded.templates[row] if loaded.templates is not None and row < len(loaded.templates) \
            else np.zeros(loaded.model.dims.template_dim, np.float32)

    def motion_fn(audio, n_frames: int) -> Iterator[dict[str, np.ndarray]]:
        rows, n = extractor.rows(audio, fps, predictor.steps_per_frame)
        start = 0
        for motion in fit_chunks(predictor.windows(rows, n, row, seed, template), n_frames):
            track = to_flame_params(motion, poses, np.zeros(0, np.float32), start)
            del track["shape"]  # the avatar's FLAME model has the identity's shape built in
            expr = np.zeros((motion.shape[0], n_expr), np.float32)
            k = min(n_expr, track["expr"].shape[1])
            expr[:, :k] = track["expr"][:, :k]
            track["expr"] = expr
            start += motion.shape[0]
            yield track

    return motion_fn
