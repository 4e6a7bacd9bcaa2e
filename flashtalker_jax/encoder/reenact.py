"""`flashtalker reenact`: drive an avatar with another person's video, no tracking at inference.

driving video --track's import stage (MediaPipe face box, one crop for the clip, 16 kHz
audio when it has any)--> crops --encoder (encoder/predict.py)--> expression, neck, jaw,
eyes and the head-to-camera code per frame --through the AVATAR's camera (the head lands
at the same crop position and apparent size as in the driving crop)--> the avatar's
render --> mp4 of the driving clip's length, its audio muxed. Expression and jaw are
transferred RELATIVELY by default: the driving clip's codes minus their median over the
clip, plus the median of the avatar's own track (its rest face), so one person's resting
mouth or brow does not become the other's expression; `relative=False` copies them as read.
The report gives the driven head's landmark jitter (projected FLAME landmarks, px/frame^2).
The head is drawn on the avatar's background (a real-footage avatar's own frame is not
composited: its body loop replays a pose that the driving video does not share).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import InputFileError


def crops_of(driving: Path, work: Path) -> tuple[list[Path], float, Path | None]:
    """(crop image paths in time order, fps, audio wav or None) of a driving video or an
    import-video folder (imported into `work` once; a rerun reuses it)."""
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data import vhap
    from flashtalker_jax.track.job import import_stage

    report = import_stage(driving, work, load_config("track"))
    folder = driving if driving.is_dir() else work
    images = sorted((folder / "images").glob("*.png"))
    if not images:
        raise InputFileError(folder / "images", "no driving crops were written")
    audio = folder / vhap.AUDIO_FILE
    has_audio = audio.is_file() and report.get("audio_seconds", 0) > 0
    return images, float(report["fps"]), audio if has_audio else None


def relative_motion(motion: dict[str, np.ndarray], avatar_track: dict) -> dict[str, np.ndarray]:
    """expr and jaw_pose as offsets from the driving clip's median, added to the avatar's."""
    out = dict(motion)
    for key in ("expr", "jaw_pose"):
        own = np.asarray(avatar_track[key], np.float32)
        width = min(own.shape[1], motion[key].shape[1])
        rest = np.zeros(motion[key].shape[1], np.float32)
        rest[:width] = np.median(own[:, :width], 0)
        out[key] = motion[key] - np.median(motion[key], 0) + rest
    return out


def reenact(avatar_dir, encoder_dir, driving, out, *, work=None, batch: int = 8, temporal: bool = True,
            relative: bool = True, still=None, still_frames: int = 6) -> dict:
    """Write `out` (module docstring); returns counts, sources and timings. `still`: a PNG
    grid of `still_frames` evenly spread frames (driving crop above, the avatar below)."""
    from PIL import Image

    from flashtalker_jax.avatar.export import resolve_avatar_dir, view_at
    from flashtalker_jax.encoder.folder import read_encoder
    from flashtalker_jax.encoder.evaluate import jitter, landmarks_2d
    from flashtalker_jax.encoder.predict import encode_clip, resize_crops, to_flame_params
    from flashtalker_jax.eval.plots import pick_frames, save_frame_grid
    from flashtalker_jax.flame.loader import find_model_file
    from flashtalker_jax.pipeline.avatar import audio_drive, load_avatar_renderer
    from flashtalker_jax.utils.progress import progress
    from flashtalker_jax.video import mp4_writer

    driving, out = Path(driving), Path(out)
    work = Path(work) if work else out.with_name(out.stem + "_driving")
    seconds, clock = {}, time.perf_counter()
    images, fps, audio = crops_of(driving, work)
    seconds["import"] = time.perf_counter() - clock

    clock = time.perf_counter()
    avatar = load_avatar_renderer(avatar_dir)
    folder = read_encoder(encoder_dir, find_model_file(resolve_avatar_dir(avatar_dir) / "flame"))
    if avatar.audio_dim and audio is None:
        raise InputFileError(driving, "has no audio, and this avatar's render takes the speech's log-mel "
                                      "rows", "drive it with a video that has sound")
    crops = resize_crops([np.asarray(Image.open(p).convert("RGB")) for p in images], folder.encoder.resolution)
    motion, _ = encode_clip(folder.encoder, crops, temporal=temporal)
    if relative:
        motion = relative_motion(motion, avatar.track)
    viewmat, K = view_at(avatar.view, avatar.size)
    params = to_flame_params(avatar.flame, motion, None, viewmat, K, avatar.size)
    landmarks = landmarks_2d(avatar.flame, params, np.broadcast_to(viewmat, (len(images), 4, 4)),
                             np.broadcast_to(K, (len(images), 3, 3)))
    track = {k: np.asarray(getattr(params, k), np.float32)
             for k in ("expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation")}
    if avatar.audio_dim:
        track["audio"] = audio_drive(audio, fps, len(images))
    seconds["encode"] = time.perf_counter() - clock

    clock = time.perf_counter()
    n = len(images)
    columns = pick_frames(n, still_frames)
    kept = {}
    with mp4_writer(out, avatar.size, avatar.size, fps, audio_path=audio) as write:
        for start in progress(range(0, n, batch), desc="reenact", unit="batch"):
            rows = np.minimum(np.arange(start, start + batch), n - 1)   # last batch padded: one shape
            frames, _ = avatar.render_fn({k: v[rows] for k, v in track.items()})
            frames = np.asarray(frames)[: min(batch, n - start)]
            write(frames)
            kept.update({int(i): frames[i - start] for i in columns if start <= i < start + len(frames)})
    seconds["render"] = time.perf_counter() - clock
    if still:
        driving_rows = resize_crops([np.asarray(Image.open(images[i]).convert("RGB")) for i in columns], avatar.size)
        save_frame_grid(Path(still), [("driving", driving_rows / 255.0),
                                      ("reenacted", np.stack([kept[int(i)] for i in columns]) / 255.0)],
                        np.arange(len(columns)))
    return {"out": str(out), "frames": n, "fps": fps, "size": avatar.size, "audio": audio is not None,
            "driving": str(driving), "avatar": str(resolve_avatar_dir(avatar_dir)), "encoder": str(folder.path),
            "temporal": bool(temporal and folder.encoder.temporal is not None), "seconds": seconds,
            "still": str(still) if still else None, "expression": "relative" if relative else "absolute",
            # the driven head's 68 FLAME landmarks in the output's pixels: px / frame^2
            "landmark_jitter_px": jitter(landmarks),
            "frames_per_s": n / max(sum(seconds.values()), 1e-9)}
