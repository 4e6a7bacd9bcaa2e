"""A small numpy mesh renderer for looking at FLAME meshes (demo sheets, debugging).

Orthographic view along -z after rotating the mesh, z-buffered per pixel, Lambert shading
with one light; back faces (the mouth interior) are drawn dark. Not used for training.
"""
from __future__ import annotations

import numpy as np


def yaw_matrix(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 256, yaw: float = 0.0,
                colors: np.ndarray | None = None, extent: float = 0.16,
                center=(0.0, -0.02, 0.0)) -> np.ndarray:
    """(size, size, 3) uint8 image of a mesh seen from +z after a yaw rotation (degrees).

    vertices (V, 3) metres; faces (F, 3); colors (F, 3) floats in [0, 1] per face or None
    (skin grey); extent is half the visible width in metres around `center`.
    """
    v = (np.asarray(vertices, np.float64) - center) @ yaw_matrix(yaw).T
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    front = normal[:, 2] > 0
    shade = np.where(front, 0.25 + 0.75 * np.clip(normal @ light, 0, 1), 0.12)
    base = np.full((faces.shape[0], 3), 0.85) if colors is None else np.asarray(colors)
    face_rgb = base * shade[:, None]
    face_rgb[~front] = [0.25, 0.05, 0.05]
    px = (tri[..., :2] / extent * 0.5 + 0.5) * size
    px[..., 1] = size - px[..., 1]
    image = np.full((size, size, 3), 0.12)
    depth = np.full((size, size), -np.inf)
    for k in np.argsort(tri[:, :, 2].mean(1)):
        _fill_triangle(px[k], tri[k, :, 2], face_rgb[k], image, depth)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _fill_triangle(p, z, rgb, image, depth):
    size = image.shape[0]
    x0, y0 = np.floor(p.min(0)).astype(int)
    x1, y1 = np.ceil(p.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size - 1), min(y1, size - 1)
    if x1 < x0 or y1 < y0:
        return
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
    (ax, ay), (bx, by), (cx, cy) = p
    det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    if abs(det) < 1e-12:
        return
    l0 = ((by - cy) * (xs - cx) + (cx - bx) * (ys - cy)) / det
    l1 = ((cy - ay) * (xs - cx) + (ax - cx) * (ys - cy)) / det
    l2 = 1 - l0 - l1
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    zz = l0 * z[0] + l1 * z[1] + l2 * z[2]
    region = depth[y0:y1 + 1, x0:x1 + 1]
    win = inside & (zz > region)
    region[win] = zz[win]
    image[y0:y1 + 1, x0:x1 + 1][win] = rgb
