"""GaussianHeadTalk's temporal stability score (lower is better), built from the paper.

The paper (Sec. 3.3, Eq. 7) tracks facial keypoints on the nose in the generated and the
ground-truth video ("largely unaffected by jaw movement and expression changes"), compares
the two time signals, adds an FFT analysis for high-frequency wobbling, and averages three
terms, each "normalized by their respective maximum values across a given sequence of
input frames": Stability = (M_d + V_m + H_f) / 3. There is no public implementation; this is
our reading, every choice stated:

- Signals: K nose keypoints per frame, p(t, k) in pixels (MediaPipe `NOSE_IDS`, detected
  per frame); motion v(t, k) = p(t+1, k) - p(t, k); motion magnitude s = |v|.
- Normalisation: by the maximum motion magnitude of the GROUND TRUTH over the sequence,
  S = max_{t,k} s_gt (floored at `min_reference_px` so a static reference cannot divide by
  ~0). Normalising by the generated sequence's own maxima would bound every term and the
  score by 1, but the paper's Table 1 reports 1.72-1.88 for two methods, so the reference
  must be external; the ground truth ("the input frames") is the only one available. This
  makes the terms unit-free and comparable across resolutions and head-motion levels.
- M_d, mean motion difference: mean_{t,k} |v_gen - v_gt| / S.
- V_m, variability of motion magnitude: the paper names the quantity (std over time of s),
  we compare it with the ground truth's: mean_k |std_t s_gen - std_t s_gt| / S.
- H_f, high-frequency power: rFFT over time of the motion difference v_gen - v_gt, keep the
  bins at or above `cutoff_hz`, inverse FFT, and take the root-mean-square magnitude
  (the square root of the high-frequency power, by Parseval), / S. The default 4 Hz at 25 fps
  leaves speech head motion (mostly below 2-3 Hz) out and keeps frame-to-frame wobble.
- Comparing every term with the ground truth means identical videos score exactly 0, the
  best possible value, and a constant offset (misplacement without motion) does not count:
  LMD measures that. For cross-reenactment (other audio) the reference is the video the head
  motion is taken from, as in the paper's pipeline.
- Values are not comparable with the paper's table: its keypoint detector ([64]), cutoff and
  exact normalisation are not published. On may_5s.mp4 (125 frames) frames jittered by
  random whole-pixel shifts of +-1/2/4 px scored 0.088/0.174/0.355, a constant 4 px shift
  0.032 (detector noise only), identical frames 0.
"""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.audio.io import FPS
from flashtalker_jax.metrics.landmarks import NOSE_IDS


def _high_pass(signal, fps: float, cutoff_hz: float):
    """Zero the rFFT bins below cutoff_hz along axis 0 of (T, ...) and transform back."""
    n = signal.shape[0]
    spectrum = jnp.fft.rfft(signal, axis=0)
    freqs = jnp.fft.rfftfreq(n, d=1.0 / fps)
    keep = (freqs >= cutoff_hz).reshape((-1,) + (1,) * (signal.ndim - 1))
    return jnp.fft.irfft(jnp.where(keep, spectrum, 0.0), n=n, axis=0)


@partial(jax.jit, static_argnames=("fps", "cutoff_hz", "min_reference_px"))
def stability_terms(gen_points, gt_points, fps: float = FPS, cutoff_hz: float = 4.0,
                    min_reference_px: float = 0.5) -> dict:
    """The three normalised terms and the score. gen_points, gt_points: (T, K, 2) pixels."""
    chex.assert_rank([gen_points, gt_points], 3)
    chex.assert_equal_shape([gen_points, gt_points])
    if gen_points.shape[0] < 3:
        raise ValueError(f"stability needs at least 3 frames, got {gen_points.shape[0]}")
    if not 0 < cutoff_hz <= fps / 2:
        raise ValueError(f"cutoff_hz {cutoff_hz} must be in (0, fps/2 = {fps / 2}]")
    gen_points, gt_points = jnp.asarray(gen_points)[..., :2], jnp.asarray(gt_points)[..., :2]
    v_gen, v_gt = jnp.diff(gen_points, axis=0), jnp.diff(gt_points, axis=0)  # (T-1, K, 2)
    s_gen, s_gt = jnp.linalg.norm(v_gen, axis=-1), jnp.linalg.norm(v_gt, axis=-1)
    reference = jnp.maximum(jnp.max(s_gt), min_reference_px)

    motion_difference = jnp.mean(jnp.linalg.norm(v_gen - v_gt, axis=-1)) / reference
    variability = jnp.mean(jnp.abs(jnp.std(s_gen, axis=0) - jnp.std(s_gt, axis=0))) / reference
    wobble = _high_pass(v_gen - v_gt, fps, cutoff_hz)  # (T-1, K, 2)
    high_frequency = jnp.sqrt(jnp.mean(jnp.sum(wobble**2, axis=-1))) / reference
    return {
        "motion_difference": motion_difference,
        "motion_variability": variability,
        "high_frequency": high_frequency,
        "score": (motion_difference + variability + high_frequency) / 3.0,
    }


def stability_score(gen_points, gt_points, fps: float = FPS, cutoff_hz: float = 4.0,
                    min_reference_px: float = 0.5):
    """(M_d + V_m + H_f) / 3 for (T, K, 2) nose keypoint tracks; 0 for identical tracks."""
    return stability_terms(gen_points, gt_points, fps, cutoff_hz, min_reference_px)["score"]


def stability_from_landmarks(gen_landmarks, gt_landmarks, fps: float = FPS,
                             cutoff_hz: float = 4.0, min_reference_px: float = 0.5) -> dict:
    """`stability_terms` on the NOSE_IDS points of two MediaPipe tracks (T, 478, >=2).

    Every frame needs a face: the FFT needs an unbroken signal, so gaps are an error.
    """
    gen = np.asarray(gen_landmarks)[:, NOSE_IDS, :2]
    gt = np.asarray(gt_landmarks)[:, NOSE_IDS, :2]
    for name, points in (("generated", gen), ("ground-truth", gt)):
        missing = np.flatnonzero(~np.isfinite(points).all(axis=(1, 2)))
        if missing.size:
            raise ValueError(f"no face in frames {missing[:10].tolist()} of the {name} video"
                             f" ({missing.size} in all): stability needs every frame")
    return stability_terms(gen, gt, fps, cutoff_hz, min_reference_px)
