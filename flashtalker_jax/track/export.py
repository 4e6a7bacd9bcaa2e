"""Write a fitted clip as a VHAP folder (what data/vhap.py reads) and its overlay grid.

Camera (OpenGL camera-to-world, VHAP's convention): identity rotation at (0, 0, D), the
inverse of fit.camera_matrices' world-to-camera. Splits: the last `test_share` of the
frames is the test split (talking-head papers hold out the last 1/11), the rest train;
untracked frames (long gaps without a face) are in no split.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from flashtalker_jax.data import vhap
from flashtalker_jax.utils.files import atomic_path


def camera(log_focal: float, width: int, height: int, distance: float) -> tuple[np.ndarray, np.ndarray]:
    f = float(np.exp(log_focal)) * width
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    c2w = np.eye(4)
    c2w[2, 3] = distance
    return K, c2w


def split_frames(n: int, untracked: np.ndarray, test_share: float) -> dict[str, list[int]]:
    n_test = max(1, math.ceil(n * test_share))
    frames = np.arange(n)
    ok = ~untracked
    return {"train": frames[(frames < n - n_test) & ok].tolist(), "val": [],
            "test": frames[(frames >= n - n_test) & ok].tolist()}


def frame_params(vars_: dict, t: int) -> dict[str, np.ndarray]:
    return {"shape": vars_["shape"], "expr": vars_["expr"][t], "rotation": vars_["rotation"][t],
            "translation": vars_["translation"][t], "neck_pose": np.zeros(3, np.float32),
            "jaw_pose": vars_["jaw_pose"][t], "eyes_pose": vars_["eyes_pose"][t]}


def write_vhap(out: Path, vars_: dict, n_frames: int, width: int, height: int, fit_cfg, fps: float,
               untracked: np.ndarray, test_share: float, has_audio: bool, extra_top: dict) -> dict:
    """flame_param/, canonical_flame_param.npz, transforms*.json (written last: a folder with
    transforms.json is complete). Returns the splits."""
    K, c2w = camera(vars_["log_focal"], width, height, fit_cfg.camera_distance)
    cam = vhap.camera_record(K, c2w, width, height)
    records = []
    for t in range(n_frames):
        stem = vhap.frame_stem(t)
        record = {"file_path": f"images/{stem}.png", "fg_mask_path": f"fg_masks/{stem}.png",
                  "flame_param_path": f"flame_param/{t:05d}.npz", "timestep_index": t, "camera_index": 0, **cam}
        with atomic_path(out / record["flame_param_path"]) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v, np.float32) for k, v in frame_params(vars_, t).items()})
        records.append(record)
    with atomic_path(out / vhap.CANONICAL_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shape=np.asarray(vars_["shape"], np.float32),
                     expr=np.zeros_like(vars_["expr"][0], np.float32))
    splits = split_frames(n_frames, untracked, test_share)
    # extra_top (our extension): the crop box in the source video, so later stages can
    # paste results back into the full frame.
    vhap.write_transforms(out, records, splits, fps, vhap.AUDIO_FILE if has_audio else None, extra_top)
    return splits


def overlay_grid(out_png: Path, images: list[Path], detected: np.ndarray, fitted: np.ndarray,
                 frames: list[int], columns: int = 4, tile: int = 256) -> None:
    """PNG grid of frames: detected landmarks red, fitted (reprojected) green."""
    rows = math.ceil(len(frames) / columns)
    sheet = Image.new("RGB", (columns * tile, rows * tile), (0, 0, 0))
    for k, t in enumerate(frames):
        image = Image.open(images[t]).convert("RGB")
        scale = tile / image.width
        image = image.resize((tile, round(image.height * scale)))
        draw = ImageDraw.Draw(image)
        for points, colour in ((detected[t], (255, 40, 40)), (fitted[t], (40, 255, 40))):
            for x, y in points * scale:
                draw.point((float(x), float(y)), fill=colour)
        draw.text((4, 4), f"frame {t}", fill=(255, 255, 0))
        sheet.paste(image, ((k % columns) * tile, (k // columns) * tile))
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
