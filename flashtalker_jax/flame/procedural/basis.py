"""Blendshape bases of the procedural head: shape (300), expression (100), pose (36).

Coefficient 1 of a named component is a full, typical-strength version of it; the
remaining components are smooth localised random fields with decaying amplitude (like a
PCA spectrum), deterministic from the seed.
"""
from __future__ import annotations

import numpy as np

from flashtalker_jax.flame.procedural import geometry as geo
from flashtalker_jax.flame.procedural.rest import (RestHead, mouth_profile, mouth_rows,
                                                    vertex_normals)

# Meaning of the first expression components (jaw-independent; the jaw is a joint).
EXPR_COMPONENTS = {"mouth_open": 0, "smile": 1, "pucker": 2, "stretch": 3,
                   "brow_raise": 4, "eye_close": 5, "brow_lower": 6, "lips_press": 7}
SHAPE_COMPONENTS = {"size": 0, "width": 1, "face_length": 2, "jaw_width": 3, "nose_length": 4,
                    "nose_width": 5, "brow_depth": 6, "cheeks": 7, "lip_fullness": 8,
                    "chin": 9, "forehead_slope": 10, "eye_spacing": 11}
N_SHAPE, N_EXPR, N_POSE = 300, 100, 36


def _gauss(p, center, radius):
    return np.exp(-np.sum((p - center) ** 2, axis=-1) / (2 * radius ** 2))


def _mouth_corners(head: RestHead) -> np.ndarray:
    g = head.grid
    cols = [np.argmin(np.abs(g.theta_cols - s * geo.MOUTH_HALF_WIDTH)) for s in (1, -1)]
    return head.vertices[g.base[g.mouth_ring, cols]]


def _lip_weight(p):
    return np.exp(-(p[:, 0] / 0.03) ** 2 - ((p[:, 1] + 0.043) / 0.016) ** 2) * (p[:, 2] > 0.05)


def expression_basis(head: RestHead, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 100). Eyeballs never move with expressions."""
    g, n = head.grid, head.n_head
    p = head.vertices[:n]
    out = np.zeros((head.vertices.shape[0], 3, N_EXPR))
    rows, prof = mouth_rows(g), mouth_profile(g)
    above = np.where(g.side != 0, g.side > 0, rows < 0) & (np.abs(g.polar - g.rings[g.mouth_ring]) < 0.3)
    below = np.where(g.side != 0, g.side < 0, rows > 0) & (np.abs(g.polar - g.rings[g.mouth_ring]) < 0.3)
    near = np.abs(g.polar - g.rings[g.mouth_ring]) < 1e-9
    rows = np.where(near, 0.0, rows)
    e = out[:n]
    e[:, 1, 0] = 0.004 * prof * np.clip(1 - np.abs(rows) / 3, 0, 1) * above
    e[:, 1, 0] -= 0.007 * prof * np.clip(1 - np.abs(rows) / 4, 0, 1) * below
    left, right = _mouth_corners(head)
    for corner, sx in ((left, 1.0), (right, -1.0)):
        gc = _gauss(p, corner, 0.016)[:, None]
        cheek = _gauss(p, corner + [sx * 0.008, 0.025, -0.01], 0.018)[:, None]
        e[:, :, 1] += gc * [sx * 0.005, 0.007, -0.004] + cheek * [sx * 0.002, 0.003, 0.002]
        e[:, :, 3] += gc * [sx * 0.008, -0.002, -0.003]
    lips = _lip_weight(p)[:, None]
    e[:, :, 2] = lips * np.stack([-0.35 * p[:, 0], np.zeros(n), np.full(n, 0.01)], 1)
    e[:, :, 3] += lips * [0.0, 0.0, -0.0015]
    front = np.clip(p[:, 2] / 0.05, 0, 1)
    brow = np.exp(-((p[:, 1] - 0.045) / 0.025) ** 2) * np.exp(-(p[:, 0] / 0.085) ** 2) * front
    e[:, 1, 4] = 0.007 * brow
    e[:, :, 5] = head.closed_lids - p
    inner = (np.exp(-((p[:, 1] - 0.04) / 0.015) ** 2) * np.exp(-((np.abs(p[:, 0]) - 0.022) / 0.02) ** 2)
             * front)
    e[:, :, 6] = inner[:, None] * np.stack([-np.sign(p[:, 0]) * 0.002, np.full(n, -0.004),
                                            np.full(n, 0.001)], 1)
    e[:, :, 7] = lips * [0.0, 0.0, -0.003]
    face = (np.abs(g.theta) < 1.1) & (g.polar > 0.8) & (g.polar < 2.3)
    for k in range(len(EXPR_COMPONENTS), N_EXPR):
        amp = 0.003 * (len(EXPR_COMPONENTS) / (k + 1)) ** 0.5
        e[:, :, k] = _random_field(p, p[face], rng, amp, (0.008, 0.02), n_bumps=2)
    return out


def _random_field(p, anchors, rng, amplitude, radius_range, n_bumps):
    field = np.zeros_like(p)
    for _ in range(n_bumps):
        center = anchors[rng.integers(anchors.shape[0])]
        radius = rng.uniform(*radius_range)
        field += _gauss(p, center, radius)[:, None] * rng.normal(size=3)
    return field * amplitude / max(np.linalg.norm(field, axis=1).max(), 1e-12)


def _named_shape_fields(head: RestHead) -> list:
    p = head.vertices
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    zeros = np.zeros_like(x)
    normals = vertex_normals(p, head.faces)
    eye_y, mouth_y = geo.EYE_CENTER[1], -0.0425
    left, right = geo.eye_centers()

    def vec(dx=zeros, dy=zeros, dz=zeros):
        return np.stack([dx + zeros, dy + zeros, dz + zeros], 1)

    soft_below_eyes = 0.02 * np.log1p(np.exp((eye_y - y) / 0.02))
    lower = 1 / (1 + np.exp((y - (mouth_y + 0.005)) / 0.01))
    cheeks = _gauss(p, [0.045, -0.01, 0.07], 0.022) + _gauss(p, [-0.045, -0.01, 0.07], 0.022)
    return [
        vec(0.04 * x, 0.04 * y, 0.04 * z),
        vec(dx=0.05 * x),
        vec(dy=-0.07 * soft_below_eyes),
        vec(dx=0.10 * x * lower),
        vec(dz=0.005 * _gauss(p, [0, -0.012, 0.115], 0.018)),
        vec(dx=0.2 * x * _gauss(p, [0, -0.012, 0.105], 0.015)),
        vec(dz=0.004 * _gauss(p, [0, 0.04, 0.09], 0.02) * np.exp(-(x / 0.05) ** 2)),
        0.004 * normals * cheeks[:, None],
        0.002 * normals * _lip_weight(p)[:, None],
        vec(dy=-0.002 * _gauss(p, [0, -0.09, 0.075], 0.02), dz=0.006 * _gauss(p, [0, -0.09, 0.075], 0.02)),
        vec(dz=-0.008 * np.clip((y - 0.04) / 0.06, 0, 1) * np.clip(z / 0.05, 0, 1)),
        vec(dx=0.003 * (_gauss(p, left, 0.022) - _gauss(p, right, 0.022))),
    ]


def shape_basis(head: RestHead, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 300). Eyeballs move rigidly with the field at their centre."""
    fields = _named_shape_fields(head)
    n_named = len(fields)
    p = head.vertices
    for k in range(n_named, N_SHAPE):
        amp = 0.003 * (n_named / (k + 1)) ** 0.8
        fields.append(_random_field(p, p[: head.n_head], rng, amp, (0.025, 0.06), n_bumps=3))
    out = np.stack(fields, axis=-1)
    for eye in head.eyeballs:
        ids = eye["ids"]
        out[ids] = out[eye["centre_ids"]].mean(axis=0, keepdims=True)
    return out


def pose_basis(head: RestHead, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 36): column 9 (joint - 1) + 3 row + col multiplies (R_joint - I)[row, col].

    Neck: small smooth neck-skin fields. Jaw: opening (R[2, 1] = sin of the x rotation) pulls
    the mouth corners in and pushes the lower lip forward. Eyes: the upper lid follows the
    eyeball when it looks up or down.
    """
    n, p = head.n_head, head.vertices
    out = np.zeros((p.shape[0], 3, N_POSE))
    neck_w = np.exp(-((p[:, 1] + 0.07) / 0.035) ** 2)
    neck_w[n:] = 0
    neck_anchors = p[:n][neck_w[:n] > 0.5]
    for c in range(9):
        out[:, :, c] = _random_field(p, neck_anchors, rng, 0.003, (0.03, 0.05), 2) * neck_w[:, None]
    left, right = _mouth_corners(head)
    jaw = (_gauss(p, left, 0.02)[:, None] * [-0.004, -0.002, 0.0]
           + _gauss(p, right, 0.02)[:, None] * [0.004, -0.002, 0.0]
           + (_lip_weight(p) * (p[:, 1] < -0.0425))[:, None] * [0.0, 0.0, 0.003])
    jaw[n:] = 0
    out[:, :, 9 + 7] = jaw
    g = head.grid
    rows = (g.polar - g.rings[g.eye_ring])
    upper = np.where(g.side != 0, g.side > 0, rows < 0) & (rows > -0.25)
    for j, (center, theta) in enumerate(zip(geo.eye_centers(), head.eye_thetas)):
        w = np.zeros(p.shape[0])
        w[:n] = upper * np.clip(1 - ((g.theta - theta) / (geo.EYE_HALF_WIDTH * 1.3)) ** 2, 0, 1)
        out[:, 1, 18 + 9 * j + 7] = -0.5 * (geo.EYE_RADIUS + geo.LID_GAP) * w
    return out
