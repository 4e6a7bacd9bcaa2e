"""AUE-style action-unit error with MediaPipe's 52 blendshapes as the detector.

Published AUE uses OpenFace action-unit intensities, which need a separate non-Python tool;
MediaPipe's blendshape scores (ARKit names, each in [0, 1]) play the same role here:
AUE = mean over frames and blendshapes of |score(generated) - score(ground truth)|,
reported for all 51 expressive blendshapes (`_neutral` is left out) and for the upper face
(brows, eyes, cheek squint, nose sneer) and lower face (jaw, mouth, cheek puff) separately.
Frames where either side has no face (NaN) are left out.
"""

import chex
import jax.numpy as jnp

from flashtalker_jax.metrics._jit import jit_with_ids
from flashtalker_jax.metrics.landmarks import BLENDSHAPE_NAMES

UPPER_PREFIXES = ("brow", "eye", "cheekSquint", "noseSneer")
LOWER_PREFIXES = ("jaw", "mouth", "cheekPuff")


def _ids(prefixes):
    return tuple(i for i, n in enumerate(BLENDSHAPE_NAMES) if n.startswith(prefixes))


AU_GROUPS = {
    "all": tuple(i for i, n in enumerate(BLENDSHAPE_NAMES) if n != "_neutral"),
    "upper": _ids(UPPER_PREFIXES),
    "lower": _ids(LOWER_PREFIXES),
}


@jit_with_ids("ids")
def action_unit_error(pred, gt, ids):
    """Mean |pred - gt| over frames with finite scores and the blendshapes `ids`. (T, 52) x2."""
    chex.assert_rank([pred, gt], 2)
    chex.assert_equal_shape([pred, gt])
    pred, gt = jnp.asarray(pred)[:, ids], jnp.asarray(gt)[:, ids]
    valid = jnp.all(jnp.isfinite(pred) & jnp.isfinite(gt), axis=1)  # (T,)
    err = jnp.where(valid[:, None], jnp.abs(pred - gt), 0.0)
    return jnp.sum(err) / (jnp.sum(valid) * err.shape[1])


def aue(pred, gt) -> dict:
    """AUE for every group in AU_GROUPS: {"all": ..., "upper": ..., "lower": ...}."""
    return {name: action_unit_error(pred, gt, ids) for name, ids in AU_GROUPS.items()}
