"""The motion stage of `speak`: audio file -> per-frame FLAME parameters.

Expression and jaw come from a saved motion run (`pretrain-a2e` / `adapt-a2e`: the GGTalker
diffusion prior or the Audio2Param baseline, see motion/inference.py). Head pose, neck and
eyes come from a tracked video, played forward and backward for long clips: the
identity's own, stored in the avatar folder (track.npz, avatar/export.py), or another VHAP
folder (`--pose-from`); with `still=True`, from its first frame only. Nothing here reads
the motion run's or the avatar's training data.
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


def replay_poses(track: dict[str, np.ndarray], still: bool = False) -> dict[str, np.ndarray]:
    """The pose keys of a tracked sequence (an avatar folder's track.npz), its first frame
    only when `still`."""
    return {k: np.asarray(track[k][:1] if still else track[k], np.float32) for k in POSE_KEYS}


def pose_track(data_dir: str | Path, still: bool = False, camera: int = 0) -> dict[str, np.ndarray]:
    """Head pose per timestep (one camera's frames, in time order) of a VHAP folder: the rows
    an avatar exported from that folder stores in its track.npz."""
    from flashtalker_jax.avatar.export import replay_track
    from flashtalker_jax.data.vhap import read_vhap

    return replay_poses(replay_track(read_vhap(data_dir), camera), still)


# The feature grid and round(duration * fps) may differ by one frame at the clip's end;
# a larger gap means the rows and the frames describe different clips or rates.
MAX_LENGTH_GAP = 1


def check_length(rows: int, n_frames: int, what: str) -> None:
    if abs(rows - n_frames) > MAX_LENGTH_GAP:
        raise ValueError(f"{what}: {rows} rows for {n_frames} video frames (more than "
                         f"{MAX_LENGTH_GAP} apart: a different clip, frame rate or feature grid)")


def fit_length(motion: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim, or repeat the last row, so the motion has exactly n_frames rows (the feature
    grid and round(duration * fps) can differ by a frame at the end of the clip; a larger
    mismatch is refused)."""
    check_length(motion.shape[0], n_frames, "fit_length")
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


def wav2vec2_folder(loaded) -> str | None:
    """The wav2vec2 checkpoint a run's features come from (features="wav2vec2"; None for
    log-mel): task.wav2vec2_dir, which model.json stores resolved. The only file outside the
    run folder that sampling reads; ModelFileError naming it when it is gone or is not the
    checkpoint the run was trained with (sources.wav2vec2_checkpoint_id)."""
    from flashtalker_jax.errors import ModelFileError

    task = loaded.task
    if task.features != "wav2vec2":
        return None
    folder = Path(task.wav2vec2_dir) if task.wav2vec2_dir else None
    where = loaded.path / "model.json" if loaded.path else "model.json"
    if folder is None or not folder.is_dir():
        raise ModelFileError(folder or where, "the wav2vec2 checkpoint folder this motion run "
                             "extracts its features with is not found (model.json task.wav2vec2_dir)",
                             "put the checkpoint back at that path, or set task.wav2vec2_dir in "
                             f"{where} to where it is now")
    expected = (loaded.sources or {}).get("wav2vec2_checkpoint_id")
    if expected:
        from flashtalker_jax.audio.wav2vec2 import _checkpoint_id

        if _checkpoint_id(folder) != expected:
            raise ModelFileError(folder, "is not the wav2vec2 checkpoint this motion run was trained "
                                 "with (its checkpoint id differs from model.json sources)",
                                 f"point task.wav2vec2_dir in {where} at the original checkpoint")
    return str(folder)


ANY_STYLE = "any"   # the style row every motion run learns for unseen speakers (row 0)


def style_row(loaded, style: str) -> int:
    """Embedding row of `style`: ANY_STYLE -> 0, one of the run's identity names -> its row;
    anything else is refused (never a silent fallback to the any-speaker row)."""
    from flashtalker_jax.errors import ConfigError

    if style == ANY_STYLE:
        return 0
    if style not in loaded.identities:
        raise ConfigError(f"style {style!r} is not an identity of the motion run {loaded.path} "
                          f"(it has {sorted(loaded.identities)}); pass --style {ANY_STYLE} for "
                          "its any-speaker style or one of those names")
    return loaded.identities.index(style) + 1


def audio2param_template(loaded, row: int) -> np.ndarray:
    """Audio2Param's style input of `row`; a run without its template table is refused."""
    from flashtalker_jax.errors import ModelFileError

    if loaded.templates is None or row >= len(loaded.templates):
        raise ModelFileError(loaded.path or "motion run", f"Audio2Param run has no identity template "
                             f"for style row {row}", "re-run pretrain-a2e / adapt-a2e to save it")
    return loaded.templates[row]


def motion_from_run(run: str | Path, poses: dict[str, np.ndarray], fps: float, n_expr: int,
                    style: str = ANY_STYLE, seed: int = 0, sample_steps: int | None = None) -> MotionFn:
    """A MotionFn yielding, one model window at a time, expr (t, n_expr), jaw_pose (t, 3)
    and the pose keys (t, k) of consecutive frames.

    `style`: ANY_STYLE (the any-speaker row) or a name the run was trained on. The run's expressions are zero-padded or truncated to `n_expr`, the count the
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
    extractor = FeatureExtractor.load(task.features, wav2vec2_folder(loaded))
    row = style_row(loaded, style)
    template = audio2param_template(loaded, row) if loaded.kind == "audio2param" else None

    def motion_fn(audio, n_frames: int) -> Iterator[dict[str, np.ndarray]]:
        rows, n = extractor.rows(audio, fps, predictor.steps_per_frame)
        check_length(n, n_frames, "motion features")
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
