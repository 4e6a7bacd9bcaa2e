"""Camera conventions: viewmat (4, 4) world-to-camera with OpenCV axes (x right, y down,
z forward), K (3, 3) intrinsics in pixels, principal point in pixel units where pixel
(i, j) has its centre at (j + 0.5, i + 0.5)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def scale_intrinsics(K, factor: float):
    """Intrinsics (..., 3, 3) of the same camera on an image resized by `factor` (both axes).
    Rows fx/0/cx and 0/fy/cy scale; with pixel centres at (j + 0.5, i + 0.5) the image's
    continuous extent [0, W] maps to [0, factor W], so no half-pixel shift is needed. A numpy
    K gives a scaled numpy copy of the same dtype (bit-equal wherever frames are read: the
    loaders and the record reader must agree); a jax K a jax array."""
    if isinstance(K, jax.Array):
        return K.at[..., :2, :].multiply(factor)
    out = np.array(K, copy=True)
    out[..., :2, :] *= factor
    return out


def camera_position(viewmat: jnp.ndarray) -> jnp.ndarray:
    """World position (..., 3) of the camera centre of viewmat (..., 4, 4): -R^T t."""
    rot = viewmat[..., :3, :3]
    trans = viewmat[..., :3, 3]
    return -jnp.einsum("...ji,...j->...i", rot, trans)


def project_points(points: jnp.ndarray, viewmat: jnp.ndarray, K: jnp.ndarray,
                   min_depth: float | None = None) -> jnp.ndarray:
    """Pixel coordinates (x, y) of world points: points (..., P, 3), viewmat (..., 4, 4),
    K (..., 3, 3), leading axes broadcast (one camera for all, or one per batch row)
    -> (..., P, 2); pixel (i, j) has its centre at (j + 0.5, i + 0.5).

    min_depth: None divides by the true depth (an exact pinhole: what the evaluation
    metrics compare against other trackers); a float clamps the depth from below first, so
    training losses stay finite with gradients for points at or behind the camera
    (avatar/losses.py uses 1e-6).
    """
    cam = jnp.einsum("...ij,...pj->...pi", viewmat[..., :3, :3], points) + viewmat[..., None, :3, 3]
    uvw = jnp.einsum("...ij,...pj->...pi", K, cam)
    depth = uvw[..., 2:3] if min_depth is None else jnp.maximum(uvw[..., 2:3], min_depth)
    return uvw[..., :2] / depth
