"""Paste a face crop back into its source frame: the inverse of import_video.crop_frame.

`flashtalker track` works on one square box of the source video, resized to S x S
(data/import_video.py crop_frame: PIL bilinear with the sub-pixel box [x0, y0, x0 + side,
y0 + side], zero padding where the box leaves the frame). PIL places output pixel i's
centre at source coordinate x0 + (i + 0.5) * side / S (pixel j of the source covers
[j, j + 1)). The inverse used here: source pixel p (centre p + 0.5) sits at crop
coordinate (p + 0.5 - x0) * S / side - 0.5 (in crop pixel-index units), sampled
bilinearly, edge-clamped, on each axis separately (the map is a scale and a shift, so
bilinear is separable: rows first, then columns).

Only the box's window of the frame is computed (a 517 px box in a 1280x720 frame is ~30 %
of it), which keeps paste_back cheap enough for every output frame. The region mask is
resampled the same way, so a feathered mask stays feathered; a source pixel whose centre
lies outside the box gets weight 0. Blending is out = src * (1 - m) + up(crop) * m, and
wherever m == 0 the source pixel is copied as is (not recomputed), so everything outside
the region is exactly the source. Parts of the box outside the frame are dropped (they
were zero padding in the crop).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def _axis_taps(start: int, stop: int, origin: float, side: float, size: int):
    """Bilinear taps along one axis for frame pixels [start, stop): lower crop index, upper
    crop index, weight of the upper one, and whether the pixel centre is inside the box."""
    centres = np.arange(start, stop, dtype=np.float64) + 0.5
    coord = (centres - origin) * (size / side) - 0.5          # crop pixel-index coordinate
    lower = np.floor(coord)
    weight = (coord - lower).astype(np.float32)
    lower = lower.astype(np.int64)
    inside = (centres >= origin) & (centres < origin + side)
    # Edge clamp: between the box edge and the first/last crop pixel centre (half a crop
    # pixel) the nearest crop pixel is used, as PIL does at the crop's own border.
    return np.clip(lower, 0, size - 1), np.clip(lower + 1, 0, size - 1), weight, inside


def box_window(box, width: int, height: int) -> tuple[int, int, int, int]:
    """Frame pixels (y0, y1, x0, x1), end-exclusive, whose centres lie inside the box,
    clipped to the frame (empty when the box misses the frame)."""
    x0, y0, side = (float(v) for v in box)

    def span(origin: float, limit: int) -> tuple[int, int]:
        lo = int(np.ceil(origin - 0.5))                  # first centre p + 0.5 >= origin
        hi = int(np.ceil(origin + side - 0.5))           # first centre p + 0.5 >= origin + side
        lo, hi = max(lo, 0), min(hi, limit)
        return lo, max(hi, lo)

    (top, bottom), (left, right) = span(y0, height), span(x0, width)
    return top, bottom, left, right


def resample_to_frame(image: np.ndarray, box, window: tuple[int, int, int, int]) -> np.ndarray:
    """Bilinear samples of a (S, S, C) float image at the frame pixels of `window`
    -> (y1 - y0, x1 - x0, C) float32, zero where a pixel centre is outside the box."""
    x0, y0, side = (float(v) for v in box)
    size = image.shape[0]
    top, bottom, left, right = window
    ry0, ry1, wy, in_y = _axis_taps(top, bottom, y0, side, size)
    cx0, cx1, wx, in_x = _axis_taps(left, right, x0, side, size)
    rows = _lerp(np.take(image, ry0, 0), np.take(image, ry1, 0), wy[:, None, None])      # (h, S, C)
    out = _lerp(np.take(rows, cx0, 1), np.take(rows, cx1, 1), wx[None, :, None])         # (h, w, C)
    out *= in_y[:, None, None] & in_x[None, :, None]
    return out


def _lerp(lower: np.ndarray, upper: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """lower + (upper - lower) * weight, in place in the two fresh gathers (this is the
    per-frame hot loop; temporaries of a 517^2 x 4 window cost as much as the arithmetic)."""
    upper -= lower
    upper *= weight
    lower += upper
    return lower


def _crop_as_255(crop: np.ndarray) -> np.ndarray:
    """uint8 crops as they are; float crops are the renderer's [0, 1] images -> [0, 255]."""
    crop = np.asarray(crop)
    if crop.dtype == np.uint8:
        return crop.astype(np.float32)
    if not np.issubdtype(crop.dtype, np.floating):
        raise ValueError(f"crop must be uint8 or float in [0, 1], got {crop.dtype}")
    return np.clip(crop.astype(np.float32), 0.0, 1.0) * 255.0


def _check(source: np.ndarray, crop: np.ndarray, region: np.ndarray, box) -> None:
    if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
        raise ValueError(f"source must be uint8 (H, W, 3), got {source.dtype} {source.shape}")
    size = crop.shape[0]
    if crop.shape != (size, size, 3):
        raise ValueError(f"crop must be (S, S, 3), got {crop.shape}")
    if region.shape != (size, size):
        raise ValueError(f"region must be ({size}, {size}) like the crop, got {region.shape}")
    if len(box) != 3 or not float(box[2]) > 0:
        raise ValueError(f"box must be (x0, y0, side) with side > 0, got {box}")


def paste_back(source: np.ndarray, crop: np.ndarray, region: np.ndarray, box) -> np.ndarray:
    """The source frame with the crop blended in where `region` > 0 -> (H, W, 3) uint8.

    source (H, W, 3) uint8; crop (S, S, 3) uint8, or float in [0, 1]; region (S, S) float in
    [0, 1] (the share of the crop to use; feather() it for a soft edge); box (x0, y0, side)
    in source pixels, as written by import_video / track (crop_box_xy_side)."""
    source, region = np.asarray(source), np.asarray(region)
    _check(source, np.asarray(crop), region, box)
    out = source.copy()
    top, bottom, left, right = window = box_window(box, source.shape[1], source.shape[0])
    if bottom == top or right == left:
        return out
    # Colour and mask resampled together: one gather per axis for all four channels.
    stacked = np.concatenate([_crop_as_255(crop), np.clip(region, 0, 1)[..., None].astype(np.float32)], -1)
    sampled = resample_to_frame(stacked, box, window)
    colour, weight = sampled[..., :3], sampled[..., 3:]
    patch = source[top:bottom, left:right]
    blended = _lerp(patch.astype(np.float32), colour, weight)   # src * (1 - m) + crop * m
    blended = np.clip(np.rint(blended, out=blended), 0, 255, out=blended).astype(np.uint8)
    out[top:bottom, left:right] = np.where(weight > 0, blended, patch)
    return out


def feather(region: np.ndarray, px: float) -> np.ndarray:
    """A soft edge for a paste mask -> (S, S) float32 in [0, 1], zero wherever region is.

    The mask ramps linearly from 0 at its edge to full strength `px` pixels inside
    (Euclidean distance to the nearest pixel outside the region, the crop's border counting
    as outside, so a region that fills the crop still fades out before the box edge).
    Feathering inwards, not blurring outwards, keeps the promise of paste_back: pixels the
    region excluded (e.g. where the inpainter was not run) stay exactly the source."""
    region = np.clip(np.asarray(region, np.float32), 0.0, 1.0)
    if px <= 0:
        return region
    inside = np.pad(region > 0, 1)                 # the zero border: outside the crop
    distance = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
    # distance is 1 at the region's outermost pixels: that pixel gets 1 / (px + 1), not 0.
    return region * np.clip(distance / (px + 1.0), 0.0, 1.0).astype(np.float32)
