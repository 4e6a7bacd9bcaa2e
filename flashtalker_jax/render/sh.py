"""Real spherical harmonics colours, gsplat's convention (degree 0-3).

Bases follow Sloan, "Efficient Spherical Harmonic Evaluation" (JCGT 2013), the same
ordering and constants as gsplat's `_eval_sh_bases_fast`; colour = sum(basis * coeff) +
0.5, clamped at 0.
"""
from __future__ import annotations

import jax.numpy as jnp

MAX_SH_DEGREE = 3


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: jnp.ndarray) -> jnp.ndarray:
    """dirs (..., 3) unit vectors -> bases (..., (degree+1)^2)."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [jnp.full_like(x, 0.2820947917738781)]
    if degree >= 1:
        a = -0.48860251190292
        out += [a * y, -a * z, a * x]
    if degree >= 2:
        z2 = z * z
        b = -1.092548430592079 * z
        a = 0.5462742152960395
        c1 = x * x - y * y
        s1 = 2 * x * y
        out += [a * s1, b * y, 0.9461746957575601 * z2 - 0.3153915652525201, b * x, a * c1]
    if degree >= 3:
        c = -2.285228997322329 * z2 + 0.4570457994644658
        b = 1.445305721320277 * z
        a = -0.5900435899266435
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        out += [a * s2, b * s1, c * y, z * (1.865881662950577 * z2 - 1.119528997770346),
                c * x, b * c1, a * c2]
    return jnp.stack(out, axis=-1)


def sh_to_rgb(coeffs: jnp.ndarray, dirs: jnp.ndarray, degree: int) -> jnp.ndarray:
    """coeffs (..., K, C) with K >= (degree+1)^2, dirs (..., 3) (any length) -> (..., C).

    Directions are normalised here; only the first (degree+1)^2 coefficients are used.
    """
    k = num_sh_bases(degree)
    if coeffs.shape[-2] < k:
        raise ValueError(f"sh_degree {degree} needs {k} coefficients, got {coeffs.shape[-2]}")
    norm = jnp.sqrt(jnp.sum(dirs * dirs, axis=-1, keepdims=True))
    dirs = dirs / jnp.maximum(norm, 1e-12)
    bases = sh_bases(degree, dirs)
    rgb = jnp.einsum("...k,...kc->...c", bases, coeffs[..., :k, :])
    return jnp.maximum(rgb + 0.5, 0.0)
