"""FLAME landmarks: barycentric points on faces, static and yaw-dependent (contour).

Layouts: the static embedding has 51 points in iBUG-68 order without the 17 jaw-contour
points (68-point index k -> static index k - 17). The dynamic embedding holds, for each of
79 yaw bins, 17 contour points (iBUG 0..16). Like smplx (FLAME.NECK_IDX = 0), the yaw is
read from the global rotation only; the neck rotation does not move the contour.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

N_STATIC = 51
N_CONTOUR = 17
# Lips in the 51-point static layout (iBUG-68 index k -> k - N_CONTOUR): outer contour
# 48-59, inner contour 60-67, and the inner-lip midpoints 62 (upper) and 66 (lower).
OUTER_LIP = tuple(range(48 - N_CONTOUR, 60 - N_CONTOUR))
INNER_LIP = tuple(range(60 - N_CONTOUR, 68 - N_CONTOUR))
UPPER_INNER_LIP = 62 - N_CONTOUR
LOWER_INNER_LIP = 66 - N_CONTOUR


def vertices_to_landmarks(vertices: jax.Array, faces: jax.Array, lmk_faces_idx: jax.Array,
                          lmk_bary_coords: jax.Array) -> jax.Array:
    """vertices (B, V, 3); lmk_faces_idx (L,) or (B, L); bary (L, 3) or (B, L, 3) -> (B, L, 3)."""
    B = vertices.shape[0]
    tri = faces[lmk_faces_idx]  # (L, 3) or (B, L, 3)
    tri = jnp.broadcast_to(tri, (B,) + tri.shape[-2:])
    corners = jax.vmap(lambda v, t: v[t])(vertices, tri)  # (B, L, 3, 3)
    bary = jnp.broadcast_to(lmk_bary_coords, (B,) + lmk_bary_coords.shape[-2:])
    return jnp.einsum("blfi,blf->bli", corners, bary)


def yaw_bin(global_rot: jax.Array) -> jax.Array:
    """Index (B,) into the 79 contour bins from the global rotation (B, 3, 3), smplx's rule.

    Bin k in 0..39 holds yaw -k degrees about +y; bins 40..78 hold +1..+39 degrees.
    """
    rot = jax.lax.stop_gradient(global_rot)
    sy = jnp.sqrt(rot[:, 0, 0] ** 2 + rot[:, 1, 0] ** 2)
    euler_y = jnp.arctan2(-rot[:, 2, 0], sy)
    angle = jnp.round(jnp.minimum(-euler_y * 180.0 / jnp.pi, 39.0)).astype(jnp.int32)
    negative = jnp.where(angle < -39, 78, 39 - angle)
    return jnp.where(angle < 0, negative, angle)


def flame_landmarks(model, vertices: jax.Array, global_rot: jax.Array) -> jax.Array:
    """Static landmarks, then the contour for the current yaw when the model has one."""
    static = vertices_to_landmarks(vertices, model.faces, model.lmk_faces_idx,
                                   model.lmk_bary_coords)
    if model.dynamic_lmk_faces_idx is None:
        return static
    k = yaw_bin(global_rot)
    contour = vertices_to_landmarks(vertices, model.faces, model.dynamic_lmk_faces_idx[k],
                                    model.dynamic_lmk_bary_coords[k])
    return jnp.concatenate([static, contour], axis=1)


def to_ibug68(landmarks: jax.Array) -> jax.Array:
    """(B, 68, 3) in smplx order (51 static, 17 contour) -> iBUG-68 order (contour first)."""
    if landmarks.shape[-2] != N_STATIC + N_CONTOUR:
        raise ValueError(f"expected {N_STATIC + N_CONTOUR} landmarks, got {landmarks.shape[-2]}")
    return jnp.concatenate([landmarks[..., N_STATIC:, :], landmarks[..., :N_STATIC, :]], axis=-2)


def mouth_opening(landmarks: jax.Array) -> jax.Array:
    """(B, L >= 51, 3) -> (B,) distance between the inner-lip midpoints (model units)."""
    gap = landmarks[..., UPPER_INNER_LIP, :] - landmarks[..., LOWER_INNER_LIP, :]
    return jnp.linalg.norm(gap, axis=-1)
