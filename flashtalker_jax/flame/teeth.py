"""GaussianAvatars teeth: 8 rows of ring-length vertices behind the lips.

Built from the template's lip rings (15 vertices each in FLAME): upper teeth are skinned to
the neck joint, lower teeth to the jaw, so opening the jaw moves only the lower row. With
15-vertex rings this adds 120 vertices and 168 faces (FLAME 2020: 5143 / 10144), like
GaussianAvatars' `add_teeth`: shape columns copy the lip rings' mean, expression and pose
correctives and the joint regressor are zero for the teeth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ModelFileError

# FLAME 2020 topology (5023 vertices): lip rings used by GaussianAvatars / VHAP.
FLAME2020_LIP_RING_UPPER = (1713, 1715, 1716, 1735, 1696, 1694, 1657, 3543,
                            2774, 2811, 2813, 2850, 2833, 2832, 2830)
FLAME2020_LIP_RING_LOWER = (1576, 1577, 1773, 1774, 1795, 1802, 1865, 3503,
                            2948, 2905, 2898, 2881, 2880, 2713, 2712)
RING_MASKS = ("lip_outside_ring_upper", "lip_outside_ring_lower")
NECK_JOINT, JAW_JOINT = 1, 2


def lip_rings(folder: Path, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordered upper / lower lip ring vertex ids: from FLAME_masks.pkl beside the model
    (entries lip_outside_ring_upper/lower), else the FLAME 2020 lists for 5023 vertices."""
    from flashtalker_jax.flame.loader import MASKS
    from flashtalker_jax.flame.safe_pickle import safe_load_pickle
    masks_path = Path(folder) / MASKS
    if masks_path.is_file():
        masks = safe_load_pickle(masks_path)
        if isinstance(masks, dict) and all(k in masks for k in RING_MASKS):
            return tuple(np.asarray(masks[k]).astype(np.int64).reshape(-1) for k in RING_MASKS)
    if n_vertices == 5023:
        return np.asarray(FLAME2020_LIP_RING_UPPER), np.asarray(FLAME2020_LIP_RING_LOWER)
    raise ModelFileError(masks_path, f"teeth need the lip rings {RING_MASKS} in this file "
                         f"(or the 5023-vertex FLAME 2020 topology; this model has {n_vertices})")


def teeth_vertices(v_upper: np.ndarray, v_lower: np.ndarray) -> np.ndarray:
    """(8 n, 3) teeth rows from the lip rings (n, 3): GaussianAvatars' construction.

    Row order: upper root, lower root, upper edge, lower edge, upper root back, upper edge
    back, lower root back, lower edge back.
    """
    mean_dist = np.linalg.norm(v_upper - v_lower, axis=-1).mean()
    middle = (v_upper + v_lower) / 2
    middle[:, 1] = middle[:, 1].mean()
    middle[:, 2] -= 1.5 * mean_dist
    up = np.array([0.0, mean_dist, 0.0])
    back = np.array([0.0, 0.0, mean_dist])
    upper_edge = middle + 0.1 * up
    upper_root = upper_edge + 2 * up
    lower_edge = middle - 0.1 * up - 0.4 * back
    lower_root = lower_edge - 2 * up
    thickness = 1.0 * back
    return np.concatenate([upper_root, lower_root, upper_edge, lower_edge,
                           upper_root - thickness, upper_edge - thickness,
                           lower_root - thickness, lower_edge - thickness])


def _strip(row_a: np.ndarray, row_b: np.ndarray) -> np.ndarray:
    """Two triangles per quad between two vertex rows of equal length."""
    a0, a1, b0, b1 = row_a[:-1], row_a[1:], row_b[:-1], row_b[1:]
    return np.concatenate([np.stack([a0, b1, b0], 1), np.stack([a0, a1, b1], 1)])


def teeth_faces(first: int, n: int) -> np.ndarray:
    """6 strips of 2 (n - 1) triangles: front, biting edge and back of each jaw's teeth."""
    rows = [first + k * n + np.arange(n) for k in range(8)]
    up_root, lo_root, up_edge, lo_edge, up_root_b, up_edge_b, lo_root_b, lo_edge_b = rows
    return np.concatenate([
        _strip(up_root, up_edge), _strip(up_edge, up_edge_b), _strip(up_edge_b, up_root_b),
        _strip(lo_edge, lo_root), _strip(lo_edge_b, lo_edge), _strip(lo_root_b, lo_edge_b)])


def add_teeth(arrays: dict, ring_upper: np.ndarray, ring_lower: np.ndarray) -> dict:
    """Model arrays (see loader.validate_flame_arrays) with teeth vertices and faces appended."""
    ring_upper, ring_lower = np.asarray(ring_upper), np.asarray(ring_lower)
    if ring_upper.shape != ring_lower.shape or ring_upper.ndim != 1 or ring_upper.size < 2:
        raise ValueError(f"lip rings must be equal-length id lists, got {ring_upper.shape} "
                         f"and {ring_lower.shape}")
    v = arrays["v_template"]
    V, n = v.shape[0], ring_upper.size
    new_v = teeth_vertices(v[ring_upper], v[ring_lower])
    T = new_v.shape[0]
    ids = V + np.arange(T).reshape(8, n)
    upper = ids[[0, 2, 4, 5]].reshape(-1)
    lower = ids[[1, 3, 6, 7]].reshape(-1)

    n_shape = arrays["n_shape"]
    shapedirs = np.concatenate([arrays["shapedirs"], np.zeros((T,) + arrays["shapedirs"].shape[1:])])
    ring_mean = (arrays["shapedirs"][ring_upper, :, :n_shape] +
                 arrays["shapedirs"][ring_lower, :, :n_shape]) / 2
    shapedirs[V:, :, :n_shape] = np.tile(ring_mean, (8, 1, 1))
    weights = np.concatenate([arrays["weights"], np.zeros((T, arrays["weights"].shape[1]))])
    weights[upper, NECK_JOINT] = 1.0
    weights[lower, JAW_JOINT] = 1.0
    out = dict(arrays)
    out.update(
        v_template=np.concatenate([v, new_v]), shapedirs=shapedirs, weights=weights,
        posedirs=np.concatenate([arrays["posedirs"], np.zeros((T,) + arrays["posedirs"].shape[1:])]),
        J_regressor=np.concatenate([arrays["J_regressor"],
                                    np.zeros((arrays["J_regressor"].shape[0], T))], axis=1),
        f=np.concatenate([arrays["f"], teeth_faces(V, n)]),
        teeth_upper=upper, teeth_lower=lower)
    return out


# UV box of the teeth: GaussianAvatars' strip above the FLAME texture (u 0.38..0.62, v near 1),
# free in both FLAME's and the procedural head's layouts.
TEETH_UV_BOX = (0.38, 1 - 0.0425, 0.62, 1 - 0.0083)
# v level (0 = bottom of the box) of each of the 8 rows (order of teeth_vertices), chosen so
# that every strip of teeth_faces joins two neighbouring levels and no triangles overlap.
_TEETH_UV_LEVEL = (4, 3, 5, 2, 7, 6, 0, 1)


def teeth_uv(n_ring: int = 15) -> np.ndarray:
    """(8 n, 2) texture coordinates of the teeth vertices inside TEETH_UV_BOX."""
    u0, v0, u1, v1 = TEETH_UV_BOX
    u = np.linspace(u1, u0, n_ring)
    levels = np.linspace(v0, v1, 8)
    return np.concatenate([np.stack([u, np.full(n_ring, levels[k])], 1) for k in _TEETH_UV_LEVEL])


def add_teeth_uv(vt: np.ndarray, ft: np.ndarray, n_ring: int = 15):
    """UV layout (vt, ft) extended with the teeth chart, matching add_teeth's new faces."""
    return (np.concatenate([vt, teeth_uv(n_ring)]).astype(vt.dtype),
            np.concatenate([ft, teeth_faces(vt.shape[0], n_ring)]).astype(ft.dtype))
