"""An independent textured-mesh renderer (numpy) for ground-truth frames.

Deliberately unrelated to the Gaussian rasterizer it is used to test: z-buffered
triangles (the shared numpy mesh rasteriser, render/mesh.py, with a perspective camera),
perspective-correct UV interpolation, bilinear texture lookup, Lambert shading.

Conventions: as render/mesh.py (OpenCV cameras, pixel centres at +0.5); texture
coordinates follow OpenGL/FLAME (v = 0 is the bottom image row). The synth modules and
their tests reach the rasteriser through the names imported here.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from flashtalker_jax.render.camera import scale_intrinsics
from flashtalker_jax.render.mesh import (Fragments, interpolate, interpolate_at, project,  # noqa: F401
                                         rasterize, vertex_normals)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of texture (Ht, Wt, C) at uv (..., 2) in [0, 1] (v up), clamped at edges."""
    th, tw = texture.shape[:2]
    x = np.clip(uv[..., 0] * tw - 0.5, 0.0, tw - 1.0)
    y = np.clip((1.0 - uv[..., 1]) * th - 0.5, 0.0, th - 1.0)
    x0, y0 = np.floor(x).astype(np.int32), np.floor(y).astype(np.int32)
    x1, y1 = np.minimum(x0 + 1, tw - 1), np.minimum(y0 + 1, th - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@dataclasses.dataclass(frozen=True)
class Shading:
    """Lambert shading with a directional light in world axes, and the cavity colour used
    where the visible side of a face is its back (the mouth interior through open lips).
    Back faces listed in `dim_back_faces` (e.g. the inside of the neck, seen through its
    slanted cut) show their own albedo at `dim_back_level` instead."""
    light_dir: tuple[float, float, float]
    ambient: float
    diffuse: float
    background: tuple[float, float, float]
    cavity_colour: tuple[float, float, float]
    dim_back_faces: np.ndarray | None = None    # (F,) bool
    dim_back_level: float = 0.3


def render_textured(vertices, faces, uv_coords, uv_faces, texture, K, w2c, width, height,
                    shading: Shading, supersample: int = 1) -> tuple[np.ndarray, np.ndarray, Fragments]:
    """Render a textured, shaded mesh -> rgb (H, W, 3) float32 in [0, 1], alpha (H, W) float32
    (coverage fraction when supersampling) and the full-resolution fragments."""
    k = int(supersample)
    K_hi = scale_intrinsics(np.asarray(K, np.float64), k)
    frags = rasterize(vertices, faces, K_hi, w2c, width * k, height * k)
    mask = frags.mask
    face, bary = frags.face[mask], frags.bary[mask]       # shade covered pixels only
    uv = interpolate_at(face, bary, np.asarray(uv_coords, np.float32), uv_faces)
    albedo = sample_texture(np.asarray(texture, np.float32), uv)
    normals = interpolate_at(face, bary, vertex_normals(vertices, faces).astype(np.float32), faces)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    light = np.asarray(shading.light_dir, np.float32)
    light = light / np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0.0, 1.0)
    colour = albedo * (shading.ambient + shading.diffuse * lambert)[:, None]
    back = ~frags.front[mask]
    colour[back] = np.asarray(shading.cavity_colour, np.float32)
    if shading.dim_back_faces is not None:
        dim = back & shading.dim_back_faces[face]
        colour[dim] = albedo[dim] * shading.dim_back_level
    rgb = np.empty((*mask.shape, 3), np.float32)
    rgb[:] = np.asarray(shading.background, np.float32)
    rgb[mask] = colour
    return np.clip(_box_down(rgb, k), 0.0, 1.0), _box_down(mask.astype(np.float32), k), frags


def _box_down(image: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return image.astype(np.float32)
    h, w = image.shape[0] // k, image.shape[1] // k
    return image.reshape(h, k, w, k, *image.shape[2:]).mean((1, 3)).astype(np.float32)
