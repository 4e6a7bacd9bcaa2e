"""Procedural identity appearance: colours per region, baked into a FLAME UV texture with
fine detail (freckles, wrinkle lines, pores) that only small Gaussians can reproduce.

Per-vertex colours and region weights come from the rest-pose geometry and the FLAME
region masks; they are rasterised into UV space with the same mesh renderer (vertex
(u, v) placed at texel coordinates under an identity camera), then detail layers are
drawn in texel space where the baked region weights say so.
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from flashtalker_jax.data.synth import mesh_render

SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.90, 0.72, 0.60], [0.80, 0.60, 0.46],
                       [0.66, 0.46, 0.33], [0.50, 0.34, 0.24], [0.36, 0.24, 0.17]])
HAIR_COLOURS = np.array([[0.10, 0.07, 0.05], [0.30, 0.19, 0.10], [0.55, 0.38, 0.20],
                         [0.80, 0.65, 0.40], [0.55, 0.20, 0.08], [0.55, 0.55, 0.55]])
IRIS_COLOURS = np.array([[0.25, 0.15, 0.08], [0.20, 0.35, 0.55], [0.30, 0.45, 0.25], [0.45, 0.35, 0.20]])
CHANNELS = ("r", "g", "b", "face", "forehead", "scalp", "eye_region")


@dataclasses.dataclass(frozen=True)
class Appearance:
    skin: np.ndarray     # (3,) RGB in [0, 1]
    lip: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    freckles: int
    wrinkles: int


def sample_appearance(rng: np.random.Generator, cfg: ml_collections.ConfigDict) -> Appearance:
    """Draw one identity's colours and detail counts (cfg: the `identity` config section)."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.05, 3)
    lip = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.9, 1.05)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    return Appearance(skin=np.clip(skin, 0, 1), lip=np.clip(lip, 0, 1), hair=np.clip(hair, 0, 1),
                      brow=np.clip(hair * 0.8, 0, 1), iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))],
                      freckles=int(rng.integers(*cfg.freckles)), wrinkles=int(rng.integers(*cfg.wrinkles)))


def _weights(vertices: np.ndarray, ids: np.ndarray) -> np.ndarray:
    w = np.zeros(vertices.shape[0])
    w[ids] = 1.0
    return w


def vertex_attributes(vertices: np.ndarray, regions: dict, app: Appearance) -> np.ndarray:
    """(V, 7) per-vertex colour and region weights (CHANNELS) for the rest-pose mesh."""
    colour = np.tile(app.skin, (vertices.shape[0], 1))
    colour[regions["neck"]] *= 0.93
    colour[regions["scalp"]] = app.hair
    for name in ("left_eyeball", "right_eyeball"):
        colour[regions[name]] = _eyeball_colours(vertices[regions[name]], app.iris)
        centre = vertices[regions[name]].mean(0)
        brow = _brow_weight(vertices, centre)
        colour = colour * (1 - brow[:, None]) + app.brow * brow[:, None]
    lips = _lip_weight(vertices, regions)
    colour = colour * (1 - lips[:, None]) + app.lip * lips[:, None]
    masks = [_weights(vertices, regions[k]) for k in ("face", "forehead", "scalp", "eye_region")]
    return np.concatenate([colour, np.stack(masks, -1)], -1)


def _eyeball_colours(points: np.ndarray, iris: np.ndarray) -> np.ndarray:
    """Sclera, iris and pupil by angle from the eyeball's most forward direction (+z)."""
    centre = points.mean(0)
    direction = points - centre
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    angle = np.arccos(np.clip(direction[:, 2], -1, 1))
    colour = np.tile([0.93, 0.91, 0.88], (points.shape[0], 1))
    colour[angle < 0.55] = iris
    colour[angle < 0.22] = [0.03, 0.03, 0.03]
    return colour


def _brow_weight(vertices: np.ndarray, eye_centre: np.ndarray) -> np.ndarray:
    """Soft band above an eye, in front of the eyeball."""
    d = vertices - eye_centre
    band = np.exp(-np.square((d[:, 1] - 0.022) / 0.004)) * np.exp(-np.power(np.abs(d[:, 0]) / 0.02, 4))
    return band * (d[:, 2] > 0)


def _lip_weight(vertices: np.ndarray, regions: dict) -> np.ndarray:
    """Between the outer lip rings (above and below the mouth cut), within the mouth corners."""
    upper, lower = vertices[regions["lip_outside_ring_upper"]], vertices[regions["lip_outside_ring_lower"]]
    rings = np.concatenate([upper, lower])
    half_width = np.abs(rings[:, 0]).max() * 1.05
    y_mid = 0.5 * (upper[:, 1].mean() + lower[:, 1].mean())
    half_height = 0.5 * (upper[:, 1].mean() - lower[:, 1].mean()) * 1.15
    lips = np.zeros(vertices.shape[0])
    ids = regions["lips"]
    x, y = vertices[ids, 0] / half_width, (vertices[ids, 1] - y_mid) / half_height
    lips[ids] = np.clip(1.5 * (1 - (x ** 2 + (y * (1 + 0.3 * x ** 2)) ** 2)), 0, 1)
    return lips


def bake(vt: np.ndarray, ft: np.ndarray, attributes: np.ndarray, size: int) -> np.ndarray:
    """Rasterise per-vertex attributes (V, C) over the UV chart -> (size, size, C); texels
    outside every UV triangle take the nearest covered value along the row."""
    points = np.concatenate([vt[:, :1] * size, (1 - vt[:, 1:2]) * size, np.ones((vt.shape[0], 1))], 1)
    frags = mesh_render.rasterize(points, ft, np.eye(3), np.eye(4), size, size)
    out = mesh_render.interpolate(frags, attributes.astype(np.float32), ft)
    return _fill_empty(out, frags.mask)


def _fill_empty(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Bilinear lookups near chart edges must not fetch black: copy the nearest covered
    texel along each row (then column) into empty texels."""
    out = image.copy()
    for axis in (1, 0):
        idx = np.where(covered, np.arange(covered.shape[axis])[None, :] if axis == 1
                       else np.arange(covered.shape[0])[:, None], 0)
        forward = np.maximum.accumulate(idx, axis=axis)
        out = np.take_along_axis(out, forward[..., None], axis=axis)
        covered = np.take_along_axis(covered, forward, axis=axis)
    return out


def add_detail(baked: np.ndarray, rng: np.random.Generator, app: Appearance) -> np.ndarray:
    """Colour texture (size, size, 3) from baked channels plus pores, blotches, freckles, wrinkles."""
    size = baked.shape[0]
    rgb = baked[..., :3].copy()
    face, forehead, scalp, eyes = (baked[..., 3 + i] for i in range(4))
    blotch = _smooth_field(rng, size, size / 24)
    pores = rng.standard_normal((size, size))
    rgb *= (1 + 0.04 * blotch + 0.025 * pores * (1 - scalp))[..., None]
    strands = _strands(rng, size)
    rgb *= (1 + 0.12 * strands * scalp)[..., None]
    _draw_freckles(rgb, rng, face * (1 - eyes), app)
    _draw_wrinkles(rgb, rng, forehead, app)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _smooth_field(rng, size: int, scale: float) -> np.ndarray:
    coarse = rng.standard_normal((int(size / scale) + 2,) * 2)
    idx = np.linspace(0, coarse.shape[0] - 1.001, size)
    i0 = idx.astype(int)
    f = idx - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None] + rows[:, i0 + 1] * f[None]


def _strands(rng, size: int) -> np.ndarray:
    """Fine hair-like streaks: noise smeared along one texture direction."""
    noise = rng.standard_normal((size, size))
    kernel = np.ones(9) / 9.0
    return np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 0, noise) * 2.0


def _draw_freckles(rgb, rng, where: np.ndarray, app: Appearance) -> None:
    size = rgb.shape[0]
    candidates = np.argwhere(where > 0.99)
    if len(candidates) == 0:
        return
    yy, xx = np.mgrid[-4:5, -4:5]
    tint = app.skin * np.array([0.72, 0.6, 0.52])
    for cy, cx in candidates[rng.integers(len(candidates), size=app.freckles)]:
        radius = rng.uniform(0.8, 2.2)
        spot = np.exp(-(xx ** 2 + yy ** 2) / (2 * radius ** 2)) * rng.uniform(0.4, 0.8)
        y0, x0 = cy - 4, cx - 4
        if y0 < 0 or x0 < 0 or y0 + 9 > size or x0 + 9 > size:
            continue
        patch = rgb[y0:y0 + 9, x0:x0 + 9]
        patch[:] = patch * (1 - spot[..., None]) + tint * spot[..., None]


def _draw_wrinkles(rgb, rng, forehead: np.ndarray, app: Appearance) -> None:
    """Thin wavy horizontal lines across the forehead's texel extent."""
    rows, cols = np.nonzero(forehead > 0.5)
    if len(rows) == 0:
        return
    size = rgb.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    shade = app.skin * 0.72
    for level in np.linspace(0.25, 0.75, app.wrinkles):
        y_line = rows.min() + level * (rows.max() - rows.min())
        wave = y_line + 2.0 * np.sin(xx / size * 2 * np.pi * rng.uniform(3, 7) + rng.uniform(0, 6.3))
        line = np.exp(-np.square(yy - wave) / (2 * 0.7 ** 2)) * forehead * rng.uniform(0.35, 0.6)
        rgb[:] = rgb * (1 - line[..., None]) + shade * line[..., None]


def identity_texture(rest_vertices, regions, vt, ft, app: Appearance, rng, size: int) -> np.ndarray:
    """The full pipeline: attributes -> baked UV channels -> detailed (size, size, 3) texture."""
    baked = bake(vt, ft, vertex_attributes(rest_vertices, regions, app), size)
    return add_detail(baked, rng, app)
