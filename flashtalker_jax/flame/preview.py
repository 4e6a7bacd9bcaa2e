"""A small numpy mesh renderer for looking at FLAME meshes (demo sheets, debugging).

Orthographic view along -z after a yaw rotation, per-pixel z-buffer, Lambert shading with
one light; back faces (the mouth interior) are drawn dark red. Fully vectorised: every
triangle tests the pixels of a shared-size box around it, then the nearest fragment per
pixel wins. Not used for training.
"""
from __future__ import annotations

import numpy as np

BACKGROUND = 0.12
INSIDE_RGB = (0.25, 0.05, 0.05)


def yaw_matrix(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _face_colors(tri: np.ndarray, colors) -> np.ndarray:
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    front = normal[:, 2] > 0
    base = np.full((tri.shape[0], 3), 0.85) if colors is None else np.asarray(colors, np.float64)
    rgb = base * (0.25 + 0.75 * np.clip(normal @ light, 0, 1))[:, None]
    rgb[~front] = INSIDE_RGB
    return rgb


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 256, yaw: float = 0.0,
                colors: np.ndarray | None = None, extent: float = 0.16,
                center=(0.0, -0.02, 0.0)) -> np.ndarray:
    """(size, size, 3) uint8 image of a mesh seen from +z after a yaw rotation (degrees).

    vertices (V, 3) metres; faces (F, 3); colors (F, 3) in [0, 1] per face or None (grey);
    extent is half the visible width in metres around `center`.
    """
    v = (np.asarray(vertices, np.float64) - center) @ yaw_matrix(yaw).T
    tri = v[np.asarray(faces)]
    rgb = _face_colors(tri, colors)
    px = (tri[..., :2] / extent * 0.5 + 0.5) * size
    px[..., 1] = size - px[..., 1]
    lo = np.floor(px.min(axis=1)).astype(int)
    box = np.ceil(px.max(axis=1) - lo).astype(int).max(axis=1) + 1
    bucket = 2 ** np.ceil(np.log2(np.maximum(box, 1))).astype(int)
    fragments = [_fragments(px[m], lo[m], tri[m, :, 2], int(b), size, np.nonzero(m)[0])
                 for b in np.unique(bucket) for m in [bucket == b]]
    flat, depth, f_idx = (np.concatenate(parts) for parts in zip(*fragments))
    order = np.lexsort((depth, flat))
    flat, f_idx = flat[order], f_idx[order]
    nearest = np.r_[flat[1:] != flat[:-1], True]  # last = largest z = closest to the camera
    image = np.full((size * size, 3), BACKGROUND)
    image[flat[nearest]] = rgb[f_idx[nearest]]
    return (np.clip(image.reshape(size, size, 3), 0, 1) * 255).astype(np.uint8)


def _fragments(px, lo, z, box, size, face_ids):
    """Pixels covered by triangles whose bounding boxes fit in box x box: returns flat pixel
    index, depth and face id per covered pixel."""
    offs = np.stack(np.meshgrid(np.arange(box), np.arange(box), indexing="xy"), -1).reshape(-1, 2)
    pix = lo[:, None, :] + offs[None]  # (F, box^2, 2)
    cx, cy = pix[..., 0] + 0.5, pix[..., 1] + 0.5
    (ax, ay), (bx, by), (qx, qy) = (px[:, k, None, :].transpose(2, 0, 1) for k in range(3))
    det = (by - qy) * (ax - qx) + (qx - bx) * (ay - qy)
    det = np.where(np.abs(det) < 1e-12, np.nan, det)
    l0 = ((by - qy) * (cx - qx) + (qx - bx) * (cy - qy)) / det
    l1 = ((qy - ay) * (cx - qx) + (ax - qx) * (cy - qy)) / det
    l2 = 1 - l0 - l1
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & np.all((pix >= 0) & (pix < size), axis=-1)
    f, k = np.nonzero(inside)
    depth = l0[f, k] * z[f, 0] + l1[f, k] * z[f, 1] + l2[f, k] * z[f, 2]
    return pix[f, k, 1] * size + pix[f, k, 0], depth, face_ids[f]
