"""Binding of Gaussians to mesh triangles (GaussianAvatars, Qian et al. 2024).

Each posed triangle (v0, v1, v2) defines a local frame:
  a0 = normalise(v1 - v0)                      (first edge)
  a1 = normalise(a0 x (v2 - v0))               (triangle normal)
  a2 = a0 x a1                                 (in-plane, orthogonal to the edge)
  R  = [a0 a1 a2] (columns), det R = +1 by construction;
  k  = (|v1 - v0| + |a2 . (v2 - v0)|) / 2      (mean of the edge length and the height).
A Gaussian bound to the triangle with local parameters (mu, s, q) has
  world mean     = anchor + k R mu
  world scale    = k exp(s)
  world rotation = quat(R) * q   (wxyz).
GaussianAvatars anchors every Gaussian at the triangle centroid. FlashTalker's UV
sampling places several Gaussians on one triangle, so the anchor here is the barycentric
point sum_j b_j v_j; with b = (1/3, 1/3, 1/3) it is exactly the centroid (per-face mode).
"""
from __future__ import annotations

import chex
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from flashtalker_jax.avatar.quaternion import quat_multiply, quat_normalize, rotmat_to_quat


def _normalise(v, eps=1e-12):
    return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps)


def triangle_frames(vertices: Float[Array, "... V 3"], faces: Int[Array, "F 3"]
                    ) -> tuple[Float[Array, "... F 3 3"], Float[Array, "... F"]]:
    """Rotation R (columns a0, a1, a2) and scale k of every triangle (module docstring)."""
    tri = vertices[..., faces, :]  # (..., F, 3 corners, 3)
    v0, v1, v2 = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    e1, e2 = v1 - v0, v2 - v0
    a0 = _normalise(e1)
    a1 = _normalise(jnp.cross(a0, e2))
    a2 = jnp.cross(a0, a1)
    rot = jnp.stack([a0, a1, a2], axis=-1)
    edge = jnp.sqrt(jnp.sum(e1 * e1, axis=-1))
    height = jnp.abs(jnp.sum(a2 * e2, axis=-1))
    return rot, 0.5 * (edge + height)


def bound_anchors(vertices: Float[Array, "... V 3"], faces: Int[Array, "F 3"],
                  face_ids: Int[Array, "N"], barycentrics: Float[Array, "N 3"]
                  ) -> Float[Array, "... N 3"]:
    """The surface point sum_j b_j v_j of every Gaussian's triangle."""
    corners = vertices[..., faces[face_ids], :]  # (..., N, 3, 3)
    return jnp.einsum("...njc,nj->...nc", corners, barycentrics)


def local_to_world(vertices: Float[Array, "... V 3"], faces: Int[Array, "F 3"],
                   face_ids: Int[Array, "N"], barycentrics: Float[Array, "N 3"],
                   local_means: Float[Array, "... N 3"], local_log_scales: Float[Array, "... N 3"],
                   local_quats: Float[Array, "... N 4"]
                   ) -> tuple[Float[Array, "... N 3"], Float[Array, "... N 3"], Float[Array, "... N 4"]]:
    """World (means, scales, unit quats wxyz) of Gaussians bound to a posed mesh.

    `vertices` may carry leading batch axes (frames); local parameters broadcast against them.
    """
    chex.assert_rank([face_ids, barycentrics], [1, 2])
    chex.assert_equal_shape_prefix([face_ids, barycentrics], 1)
    rot, k = triangle_frames(vertices, faces)
    rot, k = rot[..., face_ids, :, :], k[..., face_ids]
    anchors = bound_anchors(vertices, faces, face_ids, barycentrics)
    means = anchors + k[..., None] * jnp.einsum("...nij,...nj->...ni", rot, local_means)
    scales = k[..., None] * jnp.exp(local_log_scales)
    quats = quat_multiply(rotmat_to_quat(rot), quat_normalize(local_quats))
    return means, scales, quats
