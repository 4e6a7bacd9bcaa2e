"""What the fit sees: per-frame MediaPipe landmarks of an imported clip, with gaps filled,
cuts found, and a weight per landmark.

Frames without a face: a gap of at most `max_gap_frames` is filled by linear
interpolation between its neighbours (weight kept at zero there, so only the temporal
terms and the interpolated targets hold the head); longer gaps are filled the same way
but reported as untracked, and left out of the splits. When more than
`max_missing_share` of the frames have no face, the clip is refused.

A scene cut shows as a jump of the face between consecutive detections larger than
`cut_threshold` x the face size; cuts are reported (the fit's smoothness terms would
otherwise blur the two shots together, so a user should split such a clip).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import InputFileError
from flashtalker_jax.track.embedding import IBUG51_MEDIAPIPE, LandmarkEmbedding

# MediaPipe's FACEMESH_FACE_OVAL points: on the silhouette, not fixed to the skin.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
IRIS = tuple(range(468, 478))
OUTER_EYE_CORNERS = (33, 263)
# Held out of the fit, scored afterwards: every HELD_OUT_STRIDE-th face point that is
# neither on the oval nor one of the 51 registration points nor iris.
HELD_OUT_STRIDE = 10


@dataclasses.dataclass(frozen=True)
class Observations:
    """landmarks (T, 478, 2) crop pixels (gaps filled), found (T,) bool, untracked (T,) bool
    (inside a gap longer than allowed), gaps [(first, last)], cuts [frame index]."""
    landmarks: np.ndarray
    found: np.ndarray
    untracked: np.ndarray
    gaps: list
    cuts: list


def read_landmarks(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """landmarks/NNNNN.npz of an import-video folder -> (T, 478, 2), found (T,)."""
    files = sorted((folder / "landmarks").glob("*.npz"))
    if not files:
        raise InputFileError(folder / "landmarks", "no landmark files (run `flashtalker data import-video` first)")
    points, found = [], []
    for path in files:
        try:
            with np.load(path) as raw:
                points.append(np.asarray(raw["landmarks"], np.float64)[:, :2])
                found.append(bool(raw["found"]))
        except (OSError, ValueError, KeyError) as err:
            raise InputFileError(path, f"unreadable landmark file ({err})", "re-run `flashtalker data import-video`") from err
    if any(p.shape != (478, 2) for p in points):
        raise InputFileError(folder / "landmarks", "landmark files must hold (478, 3) arrays")
    return np.stack(points), np.asarray(found)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), (np.nonzero(edges == -1)[0] - 1).tolist()))


def observe(landmarks: np.ndarray, found: np.ndarray, cfg, source: Path) -> Observations:
    """Fill gaps, find cuts; refuses a clip that is mostly without a face."""
    T = len(found)
    missing = 1.0 - found.mean()
    if missing > cfg.max_missing_share:
        raise InputFileError(source, f"no face in {int((~found).sum())} of {T} frames ({missing:.0%}; "
                             f"the limit is {cfg.max_missing_share:.0%})",
                             "trim the video to the part where the speaker's face is visible")
    gaps = _runs(~found)
    filled = landmarks.copy()
    idx = np.nonzero(found)[0]
    for k in range(landmarks.shape[1]):
        for c in range(2):
            filled[~found, k, c] = np.interp(np.nonzero(~found)[0], idx, landmarks[idx, k, c])
    untracked = np.zeros(T, bool)
    for first, last in gaps:
        if last - first + 1 > cfg.max_gap_frames:
            untracked[first:last + 1] = True
    size = np.ptp(landmarks[idx], axis=1).max(-1)                      # face extent per found frame
    centre = landmarks[idx].mean(1)
    jump = np.linalg.norm(np.diff(centre, axis=0), axis=-1) / size[1:]
    cuts = idx[1:][jump > cfg.cut_threshold].tolist()
    return Observations(filled, found, untracked, gaps, cuts)


def landmark_weights(embedding: LandmarkEmbedding, found: np.ndarray, fit_cfg) -> tuple[np.ndarray, np.ndarray]:
    """(T, L) fit weights in embedding order, and the (L,) held-out mask (weight 0, scored later)."""
    ids = embedding.landmark_indices
    per_point = np.ones(len(ids))
    per_point[np.isin(ids, FACE_OVAL)] = fit_cfg.contour_weight
    per_point[np.isin(ids, IRIS)] = fit_cfg.iris_weight
    candidates = [i for i in range(468) if i not in FACE_OVAL and i not in IBUG51_MEDIAPIPE]
    held_out = np.isin(ids, candidates[::HELD_OUT_STRIDE])
    per_point[held_out] = 0.0
    return found[:, None] * per_point[None], held_out
