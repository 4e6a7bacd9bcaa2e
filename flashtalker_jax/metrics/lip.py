"""Lip-sync metrics on vertex sequences (FLAME, metres) and mouth-opening curves.

Conventions (both LVE conventions are in use in the literature; names say which is which):
- `lve_max_sq_mm2`: for each frame the MAXIMUM over lip vertices of the SQUARED L2 error,
  averaged over frames, in mm^2 (FaceFormer / CodeTalker / SelfTalk style; they print it
  in units of 1e-5 m^2 = 10 mm^2).
- `lve_max_l2_mm`: the same with the plain L2 error, in mm (several Gaussian-avatar papers).
- `mve_mm`: mean over frames and vertices of the L2 error, in mm.
- `fdd_mm2`: CodeTalker's upper-face dynamics deviation. Per upper-face vertex the
  "dynamics" is the standard deviation over time of the squared norm of its displacement
  from the template; FDD = mean dynamics(ground truth) - mean dynamics(prediction), in mm^2.
  It is SIGNED: positive means the prediction moves the upper face less than the truth.
- Mouth opening: per-frame mean distance between paired upper/lower inner-lip points;
  `opening_error` (mean absolute difference), `pearson` correlation and `peak_lag`, the
  shift of the cross-correlation peak in frames (positive: the prediction lags behind).
- `speech_opening_gap`: mean opening over speech frames minus mean opening over silent
  frames of one curve: lip activity without a ground truth (cross-reenactment). A mouth
  that moves with speech and rests in silence scores high; one that ignores the audio ~0.
Inputs in metres; `scale` converts to millimetres (1000) and is exposed for other units.
"""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.metrics._jit import jit_with_ids

MM_PER_M = 1000.0


def _check_vertices(pred, gt):
    chex.assert_rank([pred, gt], 3)  # (T, V, 3)
    chex.assert_equal_shape([pred, gt])


@jit_with_ids("lip_ids")
def lve_max_sq_mm2(pred, gt, lip_ids, scale: float = MM_PER_M):
    """Mean over frames of max over lip vertices of squared error. (T,V,3) x2, (L,) -> mm^2."""
    _check_vertices(pred, gt)
    err2 = jnp.sum(((pred - gt)[:, lip_ids] * scale) ** 2, axis=-1)  # (T, L)
    return jnp.mean(jnp.max(err2, axis=1))


@jit_with_ids("lip_ids")
def lve_max_l2_mm(pred, gt, lip_ids, scale: float = MM_PER_M):
    """Mean over frames of max over lip vertices of the L2 error. (T,V,3) x2, (L,) -> mm."""
    _check_vertices(pred, gt)
    err = jnp.linalg.norm((pred - gt)[:, lip_ids] * scale, axis=-1)  # (T, L)
    return jnp.mean(jnp.max(err, axis=1))


@jax.jit
def mve_mm(pred, gt, scale: float = MM_PER_M):
    """Mean vertex L2 error over all frames and vertices. (T,V,3) x2 -> mm."""
    _check_vertices(pred, gt)
    return jnp.mean(jnp.linalg.norm((pred - gt) * scale, axis=-1))


@jit_with_ids("upper_ids")
def fdd_mm2(pred, gt, template, upper_ids, scale: float = MM_PER_M):
    """CodeTalker upper-face dynamics deviation (signed, see module doc).

    pred, gt: (T, V, 3); template: (V, 3) neutral mesh; upper_ids: (U,) vertex ids.
    """
    _check_vertices(pred, gt)
    chex.assert_shape(template, pred.shape[1:])

    def dynamics(vertices):
        disp2 = jnp.sum(((vertices - template)[:, upper_ids] * scale) ** 2, axis=-1)  # (T, U)
        return jnp.mean(jnp.std(disp2, axis=0))

    return dynamics(gt) - dynamics(pred)


def mouth_opening(points, upper_ids, lower_ids):
    """Per-frame mean distance between paired upper/lower lip points. (T,P,D) -> (T,)."""
    chex.assert_rank(points, 3)
    if len(upper_ids) != len(lower_ids):
        raise ValueError(f"{len(upper_ids)} upper vs {len(lower_ids)} lower lip ids: pair them")
    upper_ids, lower_ids = np.asarray(upper_ids), np.asarray(lower_ids)
    return jnp.mean(jnp.linalg.norm(points[:, upper_ids] - points[:, lower_ids], axis=-1), axis=1)


@jax.jit
def opening_error(pred_open, gt_open):
    """Mean absolute difference of two (T,) opening curves, in their units."""
    chex.assert_rank([pred_open, gt_open], 1)
    chex.assert_equal_shape([pred_open, gt_open])
    return jnp.mean(jnp.abs(pred_open - gt_open))


@jax.jit
def pearson(x, y):
    """Pearson correlation of two (T,) curves (NaN if either is constant)."""
    chex.assert_rank([x, y], 1)
    chex.assert_equal_shape([x, y])
    xc, yc = x - jnp.mean(x), y - jnp.mean(y)
    return jnp.sum(xc * yc) / jnp.sqrt(jnp.sum(xc**2) * jnp.sum(yc**2))


@partial(jax.jit, static_argnames="max_lag")
def cross_correlation(pred, gt, max_lag: int):
    """Normalised cross-correlation c[k] = corr(pred[t + k], gt[t]) for k in [-max_lag, max_lag].

    Each lag uses the overlapping frames only. Returns (lags (2K+1,), c (2K+1,)).
    """
    chex.assert_rank([pred, gt], 1)
    chex.assert_equal_shape([pred, gt])
    n = pred.shape[0]
    if not 0 <= max_lag < n - 1:
        raise ValueError(f"max_lag {max_lag} must be in [0, {n - 2}] for {n} frames")
    lags = jnp.arange(-max_lag, max_lag + 1)
    shifted = lags[:, None] + jnp.arange(n)[None, :]  # index into pred, (2K+1, n)
    overlap = (shifted >= 0) & (shifted < n)
    x = jnp.where(overlap, pred[jnp.clip(shifted, 0, n - 1)], 0.0)
    y = jnp.where(overlap, gt[None, :], 0.0)
    count = jnp.sum(overlap, axis=1, keepdims=True)
    xc = jnp.where(overlap, x - jnp.sum(x, axis=1, keepdims=True) / count, 0.0)
    yc = jnp.where(overlap, y - jnp.sum(y, axis=1, keepdims=True) / count, 0.0)
    values = jnp.sum(xc * yc, axis=1) / jnp.sqrt(jnp.sum(xc**2, axis=1) * jnp.sum(yc**2, axis=1))
    return lags, values


def peak_lag(pred, gt, max_lag: int):
    """Lag (frames) of the cross-correlation peak; positive means `pred` lags behind `gt`."""
    lags, values = cross_correlation(pred, gt, max_lag)
    return lags[jnp.argmax(jnp.where(jnp.isnan(values), -jnp.inf, values))]  # NaN: flat overlap


def speech_opening_gap(opening, speaking):
    """Mean of a (T,) opening curve over speech frames minus its mean over silent frames.

    speaking: (T,) bool. NaN when either set of frames is empty (no contrast to measure).
    """
    opening, speaking = np.asarray(opening, np.float64), np.asarray(speaking, bool)
    chex.assert_rank([opening, speaking], 1)
    chex.assert_equal_shape([opening, speaking])
    if speaking.all() or not speaking.any():
        return float("nan")
    return float(opening[speaking].mean() - opening[~speaking].mean())
