"""How well a fit explains the video: landmark reprojection error and jitter.

Errors are in crop pixels and in % of the outer-eye-corner distance (MediaPipe 33-263,
per frame: a scale that does not depend on the crop), over the landmarks the fit used and
over a held-out subset it never saw (observations.HELD_OUT_STRIDE). Jitter is the mean
length of the landmarks' second difference over consecutive detected frames, for the
fit and for the raw MediaPipe track, in pixels per frame^2.
"""
from __future__ import annotations

import numpy as np

from flashtalker_jax.track.embedding import LandmarkEmbedding
from flashtalker_jax.track.observations import OUTER_EYE_CORNERS


def acceleration(points: np.ndarray, found: np.ndarray) -> float:
    """Mean |second difference| of (T, L, 2) points over runs of 3 frames all `found` (T,)."""
    ok = found[2:] & found[1:-1] & found[:-2]
    acc = points[2:] - 2 * points[1:-1] + points[:-2]
    return float(np.linalg.norm(acc[ok], axis=-1).mean()) if ok.any() else float("nan")


def fit_quality(detected: np.ndarray, fitted: np.ndarray, found: np.ndarray, held_out: np.ndarray,
                emb: LandmarkEmbedding) -> dict:
    """detected / fitted (T, L, 2) pixels in embedding order, found (T,), held_out (L,)."""
    ids = list(emb.landmark_indices)
    eyes = np.linalg.norm(detected[:, ids.index(OUTER_EYE_CORNERS[0])] - detected[:, ids.index(OUTER_EYE_CORNERS[1])], axis=-1)
    err = np.linalg.norm(fitted - detected, axis=-1)[found]          # (n, L)
    rel = 100 * err / eyes[found, None]
    used = ~held_out
    return {
        "reprojection_px": float(err[:, used].mean()), "reprojection_pct_eye": float(rel[:, used].mean()),
        "heldout_reprojection_px": float(err[:, held_out].mean()),
        "heldout_reprojection_pct_eye": float(rel[:, held_out].mean()),
        "heldout_landmarks": int(held_out.sum()),
        "jitter_fit_px": acceleration(fitted, found), "jitter_mediapipe_px": acceleration(detected, found),
    }
