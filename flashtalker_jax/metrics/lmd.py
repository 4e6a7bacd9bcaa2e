"""Landmark distance (LMD) between generated and ground-truth frames.

LMD = mean over frames and landmarks of the Euclidean distance in pixels between matching
2-D landmarks (Chen et al. 2018), without alignment or normalisation, so a misplaced head
counts. Landmarks come either from MediaPipe (`landmarks.track_faces`, both videos detected
the same way) or, when both videos are renders with known FLAME meshes, from projecting the
FLAME landmark points with `render.camera.project_points` (exact pinhole, min_depth=None).
Frames where either side has no landmarks (NaN) are left out; the result is NaN when no
frame is left.
"""

import chex
import jax.numpy as jnp

from flashtalker_jax.metrics._jit import jit_with_ids
from flashtalker_jax.metrics.landmarks import FACE_IDS, LIP_IDS


@jit_with_ids("ids")
def lmd(pred, gt, ids=None):
    """Mean 2-D landmark distance. pred, gt: (T, P, D>=2) pixels; ids: optional (Q,) subset."""
    chex.assert_rank([pred, gt], 3)
    chex.assert_equal_shape([pred, gt])
    pred, gt = jnp.asarray(pred)[..., :2], jnp.asarray(gt)[..., :2]
    if ids is not None:
        pred, gt = pred[:, ids], gt[:, ids]
    valid = jnp.all(jnp.isfinite(pred) & jnp.isfinite(gt), axis=(1, 2))  # (T,)
    dist = jnp.linalg.norm(jnp.where(valid[:, None, None], pred - gt, 0.0), axis=-1)  # (T, Q)
    return jnp.sum(dist) / (jnp.sum(valid) * dist.shape[1])


def lmd_mouth(pred, gt):
    """LMD over MediaPipe's 40 lip landmarks (the usual lip-sync LMD)."""
    return lmd(pred, gt, LIP_IDS)


def lmd_face(pred, gt):
    """LMD over MediaPipe's 468 face-mesh landmarks (irises excluded)."""
    return lmd(pred, gt, FACE_IDS)
