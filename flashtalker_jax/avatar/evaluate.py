"""Held-out evaluation of an adapted avatar (`flashtalker eval-avatar`).

Held-out frames (the config's eval_splits, e.g. test) are rendered from their tracked
FLAME parameters and cameras (no per-frame refinement: those frames were never trained)
and compared with the ground truth composited on the same background:
PSNR, SSIM (metrics.image) and L1 over the whole frame, and PSNR over the mouth box:
the bounding box of the projected tracked outer-lip landmarks, grown by `mouth_margin`
of its size on every side.
A side-by-side PNG (ground truth | render | |error| x error_gain) of one frame is saved.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from flashtalker_jax.avatar import losses
from flashtalker_jax.avatar.frames import (audio_frame_features, composite_target, load_frames, over_frame,
                                           split_indices)
from flashtalker_jax.avatar.renderer import AvatarModel, AvatarRenderer, RenderSettings, render
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.metrics.image import psnr, ssim
from flashtalker_jax.utils.progress import progress


def mouth_box(landmarks, viewmat, K, size: int, margin: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the mouth box of one frame (landmarks (1, L, 3))."""
    pts = np.asarray(losses.project_points(landmarks[:, list(losses.OUTER_LIP)], viewmat, K))[0]
    lo, hi = pts.min(0), pts.max(0)
    grow = margin * (hi - lo)
    lo = np.clip(np.floor(lo - grow), 0, size - 1).astype(int)
    hi = np.clip(np.ceil(hi + grow), lo + 1, size).astype(int)
    return lo[1], hi[1], lo[0], hi[0]


def evaluate_avatar(model: AvatarModel, task_cfg, data_dir, *, png_path=None, frame_for_png: int = 0,
                    mouth_margin: float = 0.25, error_gain: float = 4.0) -> dict:
    """Metrics over the held-out frames (module docstring), rendered with the task config's
    settings (renderer.load_renderer gives both; a training AdaptModel renders the same);
    writes the PNG when asked."""
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(data_dir)
    indices = split_indices(seq, tuple(task_cfg.eval_splits))
    if task_cfg.get("eval_max_frames", 0) > 0:
        indices = indices[:task_cfg.eval_max_frames]
    audio = audio_frame_features(seq) if model.audio_dim else None
    settings = RenderSettings.from_config(task_cfg)
    size = settings.size
    frames = load_frames(seq, indices, size, audio, task_cfg.get("mask_source", "fg"))
    over_real_frame = task_cfg.get("render_over_frame", False)
    n_expr = model.flame.expr_dirs.shape[-1]

    @jax.jit
    def one(model, batch):
        params = FlameParams.from_track(batch, prefix="flame_", n_expr=n_expr)
        result = render(AvatarRenderer(model, settings), params, batch["viewmat"], batch["K"],
                        batch.get("audio"))
        return result.rgb, result.alpha, result.flame.landmarks

    rows = []
    for i in progress(range(len(indices)), desc="eval", unit="frame"):
        batch = {k: jnp.asarray(v[i:i + 1]) for k, v in frames.items()}
        rgb, alpha, landmarks = one(model, batch)
        if over_real_frame:   # as trained: the head over the frame itself
            rgb, target = over_frame(rgb, alpha, batch), batch["image"] / 255.0
        else:
            target = composite_target(batch, tuple(task_cfg.background))
        r0, r1, c0, c1 = mouth_box(landmarks, batch["viewmat"], batch["K"], size, mouth_margin)
        rows.append({"psnr": float(psnr(rgb, target, 1.0)[0]), "ssim": float(ssim(rgb, target, 1.0)[0]),
                     "l1": float(jnp.mean(jnp.abs(rgb - target))),
                     "mouth_psnr": float(psnr(rgb[:, r0:r1, c0:c1], target[:, r0:r1, c0:c1], 1.0)[0])})
        if png_path is not None and i == frame_for_png:
            save_side_by_side(png_path, np.asarray(target[0]), np.asarray(rgb[0]), error_gain)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    pixels = ("the head rendered over the ground-truth frame by its alpha: every pixel the head does not cover "
              "is ground truth (use `flashtalker eval --setting self` for the head box and neck ring)"
              if over_real_frame else "all rendered, ground truth on the avatar's background with its mask")
    return {**summary, "frames": len(rows), "split_frames": [int(i) for i in indices],
            "pixels": pixels, "per_frame": rows}


def save_side_by_side(path, target: np.ndarray, render_rgb: np.ndarray, error_gain: float) -> Path:
    error = np.clip(np.abs(render_rgb - target) * error_gain, 0, 1)
    panel = np.concatenate([target, np.clip(render_rgb, 0, 1), error], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(panel * 255).astype(np.uint8)).save(path)
    return path
