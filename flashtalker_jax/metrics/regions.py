"""Region metrics for composited frames: score where the model drew, not where the ground
truth was pasted.

A `speak` output on a real person is the source frame with the rendered head (and the
inpainted seam) pasted in (composite/paste.py). Scored over the whole frame against the
ground truth, the untouched background and torso match perfectly and inflate PSNR/SSIM
whatever the head looks like. So evaluation scores regions:
- head_box: the bounding box of the head mask (+ margin): the rendered head and its
  immediate surroundings;
- neck_ring: the band where the head meets the torso, dilate(head, r) & dilate(torso, r),
  which is where the body inpainter works and where a paste seam would show.

region_scores gives, per region: PSNR over exactly the masked pixels (image.psnr's
definition, 10 log10(range^2 / MSE), restricted to the mask, per frame then averaged over
the frames where the region is non-empty); SSIM over the region's bounding box, because
SSIM compares 11x11 Gaussian-weighted windows (image.ssim) and has no per-pixel meaning on
a ragged mask (the box is the union over the batch, grown to at least the window size, so
all frames share one shape and image.ssim compiles once); LPIPS on the same box crops when
an LPIPS function is given (it is a network on images, it needs a rectangle too).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from scipy import ndimage

from flashtalker_jax.metrics.image import gaussian_window, ssim

SSIM_WINDOW = len(gaussian_window())   # 11 px: the smallest side image.ssim accepts


def head_box(head_mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), end-exclusive, of the head mask's True pixels grown by `margin`
    pixels on every side and clipped to the image. An empty mask raises ValueError (there
    is no head to score)."""
    head_mask = np.asarray(head_mask, bool)
    rows, cols = np.nonzero(head_mask.any(1))[0], np.nonzero(head_mask.any(0))[0]
    if rows.size == 0:
        raise ValueError("head mask is empty: no head box")
    height, width = head_mask.shape
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, height),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, width))


def box_mask(box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """(height, width) bool, True inside the end-exclusive box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def disc(radius: int) -> np.ndarray:
    """Structuring element: offsets with dy^2 + dx^2 <= radius^2 (a Euclidean disc)."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2


def neck_ring(head_mask: np.ndarray, person_mask: np.ndarray, radius: int) -> np.ndarray:
    """(S, S) bool: pixels within `radius` of the head AND within `radius` of the torso
    (person & ~head). Empty when either is empty or radius is 0 (head and torso are
    disjoint), never an error: a frame without a visible torso has no seam to score."""
    head = np.asarray(head_mask, bool)
    torso = np.asarray(person_mask, bool) & ~head
    if radius <= 0 or not head.any() or not torso.any():
        return np.zeros_like(head)
    element = disc(radius)
    return ndimage.binary_dilation(head, element) & ndimage.binary_dilation(torso, element)


def evaluation_regions(head_masks: np.ndarray, person_masks: np.ndarray, margin: int,
                       radius: int) -> dict[str, np.ndarray]:
    """The standard regions of a batch: {"head_box": (B, H, W), "neck_ring": (B, H, W)} bool,
    from head masks and person masks (B, H, W) (bool, or uint8 > 127)."""
    head = _as_bool(head_masks)
    person = _as_bool(person_masks)
    height, width = head.shape[1:]
    boxes = [box_mask(head_box(h, margin), height, width) if h.any() else np.zeros((height, width), bool)
             for h in head]
    rings = [neck_ring(h, p, radius) for h, p in zip(head, person)]
    return {"head_box": np.stack(boxes), "neck_ring": np.stack(rings)}


def _as_bool(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    return masks if masks.dtype == bool else masks > 127


def masked_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, data_range: float) -> np.ndarray:
    """(B,) PSNR over each frame's masked pixels (all channels); NaN where a mask is empty,
    +inf where the region matches exactly."""
    squared = ((pred.astype(np.float64) - gt.astype(np.float64)) ** 2).sum(-1)        # (B, H, W)
    count = mask.sum((1, 2)) * pred.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = (squared * mask).sum((1, 2)) / count
        return np.where(count > 0, 10.0 * np.log10(data_range ** 2 / mse), np.nan)


def union_box(masks: np.ndarray, min_side: int) -> tuple[int, int, int, int] | None:
    """Bounding box of the masks' union over the batch, grown (centred, within the image) to
    at least `min_side` on each axis; None when every mask is empty."""
    union = masks.any(0)
    if not union.any():
        return None
    y0, y1, x0, x1 = head_box(union, 0)

    def grow(lo: int, hi: int, limit: int) -> tuple[int, int]:
        missing = max(min_side - (hi - lo), 0)
        lo = max(lo - missing // 2, 0)
        hi = min(max(hi + (missing - missing // 2), lo + min_side), limit)
        return max(min(lo, hi - min_side), 0), hi

    (y0, y1), (x0, x1) = grow(y0, y1, masks.shape[1]), grow(x0, x1, masks.shape[2])
    return y0, y1, x0, x1


def region_scores(pred: np.ndarray, gt: np.ndarray, masks: Mapping[str, np.ndarray],
                  lpips_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  data_range: float = 1.0) -> dict[str, dict[str, float]]:
    """Scores per region -> {name: {"psnr", "ssim", "lpips" (with lpips_fn), "pixels"}}.

    pred, gt (B, H, W, 3) float in [0, data_range]; masks {name: (B, H, W) bool};
    lpips_fn(a, b) -> (B,) on (B, h, w, 3) box crops in the same range (e.g.
    functools.partial(lpips_distance, model, normalize=True) for [0, 1] images).
    psnr: mean over frames with a non-empty region of the masked-pixel PSNR; ssim, lpips:
    on the region's batch bounding box (module doc). An empty region gives NaN scores."""
    pred, gt = np.asarray(pred, np.float32), np.asarray(gt, np.float32)
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValueError(f"pred and gt must be (B, H, W, C) of one shape, got {pred.shape} and {gt.shape}")
    if min(pred.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"frames must be at least {SSIM_WINDOW} px for SSIM, got {pred.shape}")
    scores = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != pred.shape[:3]:
            raise ValueError(f"mask {name!r} has shape {mask.shape}, expected {pred.shape[:3]}")
        psnr_per_frame = masked_psnr(pred, gt, mask, data_range)
        result = {"psnr": float(np.nanmean(psnr_per_frame)) if mask.any() else float("nan"),
                  "ssim": float("nan"), "pixels": int(mask.sum())}
        if lpips_fn is not None:
            result["lpips"] = float("nan")
        box = union_box(mask, SSIM_WINDOW)
        if box is not None:
            y0, y1, x0, x1 = box
            a, b = pred[:, y0:y1, x0:x1], gt[:, y0:y1, x0:x1]
            result["ssim"] = float(np.mean(np.asarray(ssim(a, b, data_range))))
            if lpips_fn is not None:
                result["lpips"] = float(np.mean(np.asarray(lpips_fn(a, b))))
        scores[name] = result
    return scores
