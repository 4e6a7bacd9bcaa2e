"""Camera conventions: viewmat (4, 4) world-to-camera with OpenCV axes (x right, y down,
z forward), K (3, 3) intrinsics in pixels, principal point in pixel units where pixel
(i, j) has its centre at (j + 0.5, i + 0.5)."""
from __future__ import annotations

import jax.numpy as jnp


def camera_position(viewmat: jnp.ndarray) -> jnp.ndarray:
    """World position (..., 3) of the camera centre of viewmat (..., 4, 4): -R^T t."""
    rot = viewmat[..., :3, :3]
    trans = viewmat[..., :3, 3]
    return -jnp.einsum("...ji,...j->...i", rot, trans)
