"""A small numpy mesh renderer for looking at FLAME meshes (demo sheets, debugging).

Orthographic view along -z after a yaw rotation through the shared mesh rasteriser
(render/mesh.py), flat Lambert shading with one light per face; back faces (the mouth
interior) are drawn dark red. Not used for training.
"""
from __future__ import annotations

import numpy as np

from flashtalker_jax.render.mesh import rasterize

BACKGROUND = 0.12
INSIDE_RGB = (0.25, 0.05, 0.05)
# World (x right, y up, z towards the viewer) -> OpenCV camera (y down, z forward), the
# camera 1 m in front of the origin; orthographic, so the distance only orders depth.
VIEW = np.array([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 1], [0, 0, 0, 1]])


def yaw_matrix(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _face_colors(tri: np.ndarray, colors) -> np.ndarray:
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    base = np.full((tri.shape[0], 3), 0.85) if colors is None else np.asarray(colors, np.float64)
    return base * (0.25 + 0.75 * np.clip(normal @ light, 0, 1))[:, None]


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 256, yaw: float = 0.0,
                colors: np.ndarray | None = None, extent: float = 0.16,
                center=(0.0, -0.02, 0.0)) -> np.ndarray:
    """(size, size, 3) uint8 image of a mesh seen from +z after a yaw rotation (degrees).

    vertices (V, 3) metres; faces (F, 3); colors (F, 3) in [0, 1] per face or None (grey);
    extent is half the visible width in metres around `center`.
    """
    faces = np.asarray(faces)
    v = (np.asarray(vertices, np.float64) - center) @ yaw_matrix(yaw).T
    scale = size / (2 * extent)  # pixels per metre
    K = np.array([[scale, 0, size / 2], [0, scale, size / 2], [0, 0, 1]])
    frags = rasterize(v, faces, K, VIEW, size, size, near=0.0, far=2.0, orthographic=True)
    rgb = _face_colors(v[faces], colors)
    image = np.full((size, size, 3), BACKGROUND)
    image[frags.mask] = rgb[frags.face[frags.mask]]
    image[frags.mask & ~frags.front] = INSIDE_RGB
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
