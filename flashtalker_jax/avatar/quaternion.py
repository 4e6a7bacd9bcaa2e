"""Quaternions (w, x, y, z), the rasterizer's convention, and rotation matrices.

Pure jnp, batched over leading axes. Quaternions are not assumed normalised on input
where the docstring says so; outputs of `rotmat_to_quat` have w >= 0.
"""
from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def quat_normalize(q: Float[Array, "... 4"], eps: float = 1e-12) -> Float[Array, "... 4"]:
    return q / jnp.sqrt(jnp.sum(q * q, axis=-1, keepdims=True) + eps)


def quat_multiply(a: Float[Array, "... 4"], b: Float[Array, "... 4"]) -> Float[Array, "... 4"]:
    """Hamilton product a * b (rotation b first, then a)."""
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_to_rotmat(q: Float[Array, "... 4"]) -> Float[Array, "... 3 3"]:
    """Rotation matrix of a (not necessarily unit) quaternion; it is normalised first."""
    w, x, y, z = jnp.moveaxis(quat_normalize(q), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def rotmat_to_quat(r: Float[Array, "... 3 3"]) -> Float[Array, "... 4"]:
    """Unit quaternion (w >= 0) of a rotation matrix.

    Shepperd's method: of the four algebraically equal forms, each component is taken from
    the one whose pivot (1 + trace, or 1 + 2 r_ii - trace) is largest, so no square root of
    a value near zero is ever divided by (the naive trace form fails near 180 degrees).
    """
    r00, r11, r22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    trace = r00 + r11 + r22
    candidates = jnp.stack([
        jnp.stack([1 + trace, r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                   r[..., 1, 0] - r[..., 0, 1]], axis=-1),
        jnp.stack([r[..., 2, 1] - r[..., 1, 2], 1 + r00 - r11 - r22, r[..., 0, 1] + r[..., 1, 0],
                   r[..., 0, 2] + r[..., 2, 0]], axis=-1),
        jnp.stack([r[..., 0, 2] - r[..., 2, 0], r[..., 0, 1] + r[..., 1, 0], 1 - r00 + r11 - r22,
                   r[..., 1, 2] + r[..., 2, 1]], axis=-1),
        jnp.stack([r[..., 1, 0] - r[..., 0, 1], r[..., 0, 2] + r[..., 2, 0],
                   r[..., 1, 2] + r[..., 2, 1], 1 - r00 - r11 + r22], axis=-1),
    ], axis=-2)  # (..., 4 forms, 4 comps); form k's pivot is component k
    pivots = jnp.stack([1 + trace, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22],
                       axis=-1)
    best = jnp.argmax(pivots, axis=-1)
    chosen = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = quat_normalize(chosen)
    return jnp.where(q[..., :1] < 0, -q, q)
