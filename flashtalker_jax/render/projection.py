"""EWA projection of 3D Gaussians to screen space, gsplat's pinhole rules.

Per camera: world -> camera (viewmat), covariance R S S^T R^T -> camera frame ->
Jacobian of the pinhole map (evaluated at the mean clamped to 1.3x the field of view,
as gsplat does) -> 2D covariance + eps2d I -> conic (inverse). Culling: depth outside
[near, far], det <= 0, opacity < 1/255, zero radius, or bounding box off the image.
Radius: ceil(min(3.33, sqrt(2 ln(255 o))) * sqrt(cov2d_ii)) per axis (gsplat's
opacity-aware box). Culled Gaussians get radius 0 and finite (unused) screen values so
gradients through them stay finite.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

ALPHA_THRESHOLD = 1.0 / 255.0
RADIUS_SIGMAS = 3.33


class Projection(NamedTuple):
    """Screen-space Gaussians for one camera (N = number of Gaussians)."""
    means2d: jnp.ndarray    # (N, 2) pixels
    conics: jnp.ndarray     # (N, 3) inverse 2D covariance (a, b, c): [[a, b], [b, c]]
    depths: jnp.ndarray     # (N,) camera-space z
    radii: jnp.ndarray      # (N, 2) int32 box half-sizes in pixels, 0 = culled


def quat_to_rotmat(quats: jnp.ndarray) -> jnp.ndarray:
    """quats (..., 4) wxyz, any norm -> rotation matrices (..., 3, 3)."""
    norm = jnp.sqrt(jnp.sum(quats * quats, axis=-1, keepdims=True))
    w, x, y, z = jnp.moveaxis(quats / jnp.maximum(norm, 1e-12), -1, 0)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return jnp.stack(rows, axis=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: jnp.ndarray, scales: jnp.ndarray) -> jnp.ndarray:
    """(..., 4) wxyz, (..., 3) -> world covariance (..., 3, 3) = (R S)(R S)^T."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return jnp.einsum("...ij,...kj->...ik", m, m)


def project(means, quats, scales, opacities, viewmat, K, width: int, height: int, *,
            eps2d: float = 0.3, near_plane: float = 0.01,
            far_plane: float = 1e10) -> Projection:
    """Project N Gaussians (means (N,3), quats (N,4), scales (N,3), opacities (N,)) into
    one camera (viewmat (4,4), K (3,3)) of width x height pixels."""
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    mean_c = means @ rot.T + trans
    cov_c = jnp.einsum("ij,njk,lk->nil", rot, covariance_3d(quats, scales), rot)

    depth = mean_c[:, 2]
    in_depth = (depth >= near_plane) & (depth <= far_plane)
    z = jnp.where(in_depth, depth, 1.0)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    tx = z * jnp.clip(mean_c[:, 0] / z, -(cx / fx + 0.3 * tan_x), (width - cx) / fx + 0.3 * tan_x)
    ty = z * jnp.clip(mean_c[:, 1] / z, -(cy / fy + 0.3 * tan_y), (height - cy) / fy + 0.3 * tan_y)
    zero = jnp.zeros_like(z)
    jac = jnp.stack([fx / z, zero, -fx * tx / (z * z),
                     zero, fy / z, -fy * ty / (z * z)], axis=-1).reshape(-1, 2, 3)
    cov2d = jnp.einsum("nij,njk,nlk->nil", jac, cov_c, jac) + eps2d * jnp.eye(2)
    means2d = jnp.stack([fx * mean_c[:, 0] / z + cx, fy * mean_c[:, 1] / z + cy], axis=-1)

    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    ok_det = det > 0
    safe_det = jnp.where(ok_det, det, 1.0)
    conics = jnp.stack([cov2d[:, 1, 1] / safe_det,
                        -(cov2d[:, 0, 1] + cov2d[:, 1, 0]) / 2.0 / safe_det,
                        cov2d[:, 0, 0] / safe_det], axis=-1)

    radii = _radii(jax.lax.stop_gradient(cov2d), jax.lax.stop_gradient(opacities))
    box = jax.lax.stop_gradient(means2d)
    on_image = ((box[:, 0] + radii[:, 0] > 0) & (box[:, 0] - radii[:, 0] < width)
                & (box[:, 1] + radii[:, 1] > 0) & (box[:, 1] - radii[:, 1] < height))
    keep = (in_depth & ok_det & (opacities >= ALPHA_THRESHOLD) & on_image
            & ((radii[:, 0] > 0) | (radii[:, 1] > 0)))
    radii = jnp.where(keep[:, None], radii, 0.0).astype(jnp.int32)
    return Projection(means2d=means2d, conics=conics, depths=depth, radii=radii)


def _radii(cov2d: jnp.ndarray, opacities: jnp.ndarray) -> jnp.ndarray:
    """Opacity-aware box half-sizes (N, 2) as floats (integers after ceil)."""
    ratio = jnp.maximum(opacities / ALPHA_THRESHOLD, 1.0)
    extend = jnp.minimum(RADIUS_SIGMAS, jnp.sqrt(2.0 * jnp.log(ratio)))
    diag = jnp.stack([cov2d[:, 0, 0], cov2d[:, 1, 1]], axis=-1)
    return jnp.ceil(extend[:, None] * jnp.sqrt(jnp.maximum(diag, 0.0)))
