"""Held-out evaluation of an adapted avatar (`flashtalker eval-avatar`).

Held-out frames (the config's eval_splits, e.g. test) are rendered from their tracked
FLAME parameters and cameras (no per-frame refinement: those frames were never trained)
and compared with the ground truth composited on the same background:
PSNR, SSIM (metrics.image) and L1 over the whole frame, and PSNR over the mouth box:
the bounding box of the projected tracked outer-lip landmarks, grown by `mouth_margin`
of its size on every side; PSNR over the eye box: the bounding box of the four projected
eye corners (iBUG 36, 39, 42, 45: they stay put when the lids close, so the box does not
shrink in a blink), grown by `eye_margin` of its width on every side.
Blinks: a per-frame eye signal, measured the same way on the render and the ground
truth: both eyes resampled to a pose-normalised patch (`eye_patches`: a grid in the frame
of each eye's tracked corners), and the mean |patch - the clip's per-pixel median patch|
(the median is the open eye, a blink departs from it); blink_corr = Pearson correlation
of the two series, with each series' range (max - min) so a flat ground truth (no blink
in the clip) shows.
A side-by-side PNG (ground truth | render | |error| x error_gain) of one frame is saved.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from flashtalker_jax.avatar import losses
from flashtalker_jax.avatar.deform_talk2me import EYES
from flashtalker_jax.avatar.frames import (audio_frame_features, composite_target, load_frames, over_frame,
                                           split_indices)
from flashtalker_jax.avatar.renderer import AvatarModel, AvatarRenderer, RenderSettings, render
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.metrics.image import psnr, ssim
from flashtalker_jax.utils.progress import progress

# The eye corners p1 and p4 of both eyes (deform_talk2me.EYES: iBUG 36, 39, 42, 45).
EYE_CORNERS = (EYES[0][0], EYES[0][3], EYES[1][0], EYES[1][3])
EYE_PATCH = (8, 16)   # rows x cols of the pose-normalised eye patch (blink signal)


def mouth_box(landmarks, viewmat, K, size: int, margin: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the mouth box of one frame (landmarks (1, L, 3))."""
    pts = np.asarray(losses.project_points(landmarks[:, list(losses.OUTER_LIP)], viewmat, K))[0]
    lo, hi = pts.min(0), pts.max(0)
    grow = margin * (hi - lo)
    lo = np.clip(np.floor(lo - grow), 0, size - 1).astype(int)
    hi = np.clip(np.ceil(hi + grow), lo + 1, size).astype(int)
    return lo[1], hi[1], lo[0], hi[0]


def eye_box(landmarks, viewmat, K, size: int, margin: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the eye box of one frame (landmarks (1, L, 3))."""
    pts = np.asarray(losses.project_points(landmarks[:, list(EYE_CORNERS)], viewmat, K))[0]
    lo, hi = pts.min(0), pts.max(0)
    grow = margin * (hi[0] - lo[0])
    lo = np.clip(np.floor(lo - grow), 0, size - 1).astype(int)
    hi = np.clip(np.ceil(hi + grow), lo + 1, size).astype(int)
    return lo[1], hi[1], lo[0], hi[0]


def eye_patches(image: np.ndarray, points: np.ndarray, size: tuple[int, int] = EYE_PATCH) -> np.ndarray:
    """Both eyes of one frame resampled to a pose-normalised grid (2, rows, cols, 3):
    image (S, S, 3); points (L, 2) projected landmarks. Each eye's frame is its corners p1,
    p4 (they stay put in a blink): the grid spans +-0.75 of the corner distance along the
    corner axis and +-0.4 of it across, sampled bilinearly, so head translation, in-plane
    rotation and scale do not move the eye within the patch."""
    rows, cols = size
    u = np.linspace(-0.75, 0.75, cols)[None, :, None]
    v = np.linspace(-0.4, 0.4, rows)[:, None, None]
    out = []
    for eye in EYES:
        p1, p4 = points[eye[0]], points[eye[3]]
        axis = p4 - p1
        normal = np.array([-axis[1], axis[0]])
        xy = 0.5 * (p1 + p4) + u * axis + v * normal - 0.5  # pixel centres at integer + 0.5
        out.append(bilinear(image, xy[..., 0], xy[..., 1]))
    return np.stack(out)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """image (H, W, C) at float pixel coordinates x, y (column, row), edges clamped."""
    h, w = image.shape[:2]
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def blink_signals(render_patches: np.ndarray, target_patches: np.ndarray) -> dict:
    """Per-frame eye signals (T,) of render and ground-truth eye patches (T, ...) and their
    Pearson correlation (module docstring); NaN correlation when a series is flat."""
    signals = []
    for patches in (render_patches, target_patches):
        axes = tuple(range(1, patches.ndim))
        signals.append(np.mean(np.abs(patches - np.median(patches, axis=0)), axis=axes))
    render_signal, target_signal = signals
    flat = np.std(render_signal) == 0 or np.std(target_signal) == 0
    corr = float("nan") if flat else float(np.corrcoef(render_signal, target_signal)[0, 1])
    return {"blink_corr": corr, "blink_gt_range": float(np.ptp(target_signal)),
            "blink_render_range": float(np.ptp(render_signal)),
            "render": render_signal, "gt": target_signal}


def evaluate_avatar(model: AvatarModel, task_cfg, data_dir, *, png_path=None, frame_for_png: int = 0,
                    mouth_margin: float = 0.25, eye_margin: float = 0.15, error_gain: float = 4.0) -> dict:
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

    rows, patches = [], ([], [])
    for i in progress(range(len(indices)), desc="eval", unit="frame"):
        batch = {k: jnp.asarray(v[i:i + 1]) for k, v in frames.items()}
        rgb, alpha, landmarks = one(model, batch)
        if over_real_frame:   # as trained: the head over the frame itself
            rgb, target = over_frame(rgb, alpha, batch), batch["image"] / 255.0
        else:
            target = composite_target(batch, tuple(task_cfg.background))
        r0, r1, c0, c1 = mouth_box(landmarks, batch["viewmat"], batch["K"], size, mouth_margin)
        e0, e1, f0, f1 = eye_box(landmarks, batch["viewmat"], batch["K"], size, eye_margin)
        rows.append({"psnr": float(psnr(rgb, target, 1.0)[0]), "ssim": float(ssim(rgb, target, 1.0)[0]),
                     "l1": float(jnp.mean(jnp.abs(rgb - target))),
                     "mouth_psnr": float(psnr(rgb[:, r0:r1, c0:c1], target[:, r0:r1, c0:c1], 1.0)[0]),
                     "eye_psnr": float(psnr(rgb[:, e0:e1, f0:f1], target[:, e0:e1, f0:f1], 1.0)[0])})
        points = np.asarray(losses.project_points(landmarks, batch["viewmat"], batch["K"]))[0]
        patches[0].append(eye_patches(np.asarray(rgb[0]), points))
        patches[1].append(eye_patches(np.asarray(target[0]), points))
        if png_path is not None and i == frame_for_png:
            save_side_by_side(png_path, np.asarray(target[0]), np.asarray(rgb[0]), error_gain)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    blink = blink_signals(np.stack(patches[0]), np.stack(patches[1]))
    for row, rendered, truth in zip(rows, blink.pop("render"), blink.pop("gt")):
        row.update(blink_render=float(rendered), blink_gt=float(truth))
    pixels = ("the head rendered over the ground-truth frame by its alpha: every pixel the head does not cover "
              "is ground truth (use `flashtalker eval --setting self` for the head box and neck ring)"
              if over_real_frame else "all rendered, ground truth on the avatar's background with its mask")
    return {**summary, **blink, "frames": len(rows), "split_frames": [int(i) for i in indices],
            "pixels": pixels, "per_frame": rows}


def save_side_by_side(path, target: np.ndarray, render_rgb: np.ndarray, error_gain: float) -> Path:
    error = np.clip(np.abs(render_rgb - target) * error_gain, 0, 1)
    panel = np.concatenate([target, np.clip(render_rgb, 0, 1), error], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(panel * 255).astype(np.uint8)).save(path)
    return path
