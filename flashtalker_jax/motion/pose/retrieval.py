"""Retrieval of an initial pose track from audio (Talk2Me's Retrieval-Based Pose Generator).

Encoder (`encode_windows`): fixed, deterministic and training-free. A window of N frames
(2N log-mel rows, normalised by the database's per-band statistics) becomes the
concatenation of its per-band mean (timbre / loudness), standard deviation (how much the
spectrum moves: voiced vs pauses) and mean absolute first difference (syllable rate, the
prosody a nod follows). Encodings are centred on the database's mean encoding (otherwise
every log-mel window looks alike and all cosines sit near 1) and L2-normalised, so cosine
similarity of every query with every database window is ONE matrix product.

Selection (`select`): each query takes the best of its top-k windows by
    cosine - continuity_weight * mean |pose offset mismatch over the overlap|
with the window already chosen before it (in units of the pose std): the matrix product
ranks by audio, the greedy step avoids two neighbours that disagree (k = 1: pure cosine).
A database window that matches the query exactly (its own audio) has cosine 1 and, next to
its own neighbour, zero mismatch, so a database's own audio retrieves its own poses.

Stitching (`overlap_add`): query windows start every N - overlap frames (the last one ends
at the clip's end); each is weighted by a Tukey taper (sin^2 ramps over `overlap` frames, flat
in the middle) and the sum is divided by the summed weights. Poses are offsets from the
identity's mean, so overlapping windows agree on their level and a sin^2 cross-fade of two
smooth tracks is smooth: no seam at the joins (the test bounds the output's largest
frame-to-frame step by the database's own).

`exclude` (training, Talk2Me's "retrieval without the window itself"): database windows
within `margin` frames of the query's own frames are never chosen.
"""
from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.motion.pose.database import PoseDatabase


def query_starts(n_frames: int, window: int, overlap: int) -> np.ndarray:
    """First frames of the query windows covering [0, n_frames): every window - overlap
    frames, the last ending at n_frames (one window at 0 when the clip is shorter)."""
    if not 0 <= overlap < window:
        raise ConfigError(f"overlap={overlap} must lie in [0, window={window})")
    last = max(n_frames - window, 0)
    starts = np.arange(0, last + 1, window - overlap)
    return np.unique(np.append(starts, last)).astype(np.int64)


def taper(window: int, overlap: int) -> np.ndarray:
    """(window,) weights: sin^2 ramps over `overlap` frames at each end, 1 between; never 0
    (the first and last frames of a clip are covered by one window only)."""
    w = np.ones(window, np.float64)
    if overlap:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap], w[window - overlap:] = ramp, ramp[::-1]
    return w


def overlap_add(windows: np.ndarray, starts: np.ndarray, n_frames: int, overlap: int) -> np.ndarray:
    """windows (W, N, P) placed at `starts` -> (n_frames, P), taper-weighted mean where they
    overlap. Windows reaching past n_frames (a clip shorter than N) are cut."""
    w, n, p = windows.shape
    chex.assert_shape(starts, (w,))
    weight = taper(n, overlap)
    total = np.zeros((max(n_frames, int(starts.max()) + n), p))
    norm = np.zeros(total.shape[0])
    for start, win in zip(starts, windows):
        total[start:start + n] += weight[:, None] * win
        norm[start:start + n] += weight
    return (total[:n_frames] / norm[:n_frames, None]).astype(np.float32)


def window_rows(frame_audio: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """(T, F) per-frame features -> (W, window, F) windows, padding past the end with the
    last frame (a query shorter than a window)."""
    t = frame_audio.shape[0]
    idx = np.minimum(starts[:, None] + np.arange(window), t - 1)
    return frame_audio[idx]


def raw_encoding(windows: np.ndarray, steps: int) -> np.ndarray:
    """(W, N, steps * D) normalised windows -> (W, 3D): per-band mean, std and mean |delta|
    over the window's N * steps rows."""
    w, n, f = windows.shape
    rows = windows.reshape(w, n * steps, f // steps)
    delta = np.abs(np.diff(rows, axis=1)).mean(1)
    return np.concatenate([rows.mean(1), rows.std(1), delta], 1)


def encode_windows(windows: np.ndarray, steps: int, centre: np.ndarray) -> np.ndarray:
    """Unit-length encodings (W, 3D) centred on `centre` (the database's mean raw encoding)."""
    z = raw_encoding(windows, steps) - centre
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)).astype(np.float32)


class Retriever:
    """A database with its windows encoded once; `retrieve` turns new audio into pose offsets.

    window/overlap: query windows (the database's window length; overlap < window);
    top_k, continuity_weight: selection (module docstring)."""

    def __init__(self, db: PoseDatabase, overlap: int, top_k: int = 8, continuity_weight: float = 0.5):
        if top_k < 1:
            raise ConfigError(f"top_k={top_k} must be >= 1")
        self.db, self.overlap, self.top_k, self.continuity_weight = db, int(overlap), int(top_k), float(continuity_weight)
        self.starts = db.window_starts()
        if not len(self.starts):
            raise ConfigError(f"the pose database has no window of {db.window} frames")
        frames = db.frame_audio()
        raw = raw_encoding(window_rows(frames, self.starts, db.window), db.steps_per_frame)
        self.centre = raw.mean(0)
        self.keys = encode_windows(window_rows(frames, self.starts, db.window), db.steps_per_frame, self.centre)
        # (W, N, P) normalised pose windows: the continuity term compares them in std units
        self.pose_windows = window_rows(db.poses, self.starts, db.window)

    def similarity(self, frame_audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(Q, W) cosine of each query window with each database window (one matmul)."""
        queries = encode_windows(window_rows(frame_audio, starts, self.db.window), self.db.steps_per_frame,
                                 self.centre)
        return np.asarray(jnp.asarray(queries) @ jnp.asarray(self.keys).T)

    def select(self, sims: np.ndarray, starts: np.ndarray, exclude_margin: int | None = None) -> np.ndarray:
        """(Q,) chosen database window per query (module docstring). exclude_margin: the
        query is the database's own frames (same timeline): windows overlapping the query's
        frames widened by the margin are masked."""
        sims = np.array(sims, np.float64)
        n = self.db.window
        if exclude_margin is not None:
            near = np.abs(self.starts[None, :] - starts[:, None]) < n + exclude_margin
            sims[near] = -np.inf
            if np.isinf(sims).all(axis=1).any():
                raise ConfigError(f"exclude margin {exclude_margin} leaves no database window for some query: "
                                  "the tracked clip is too short for leave-out retrieval")
        k = min(self.top_k, sims.shape[1])
        candidates = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        scale = 1.0 / self.db.pose_std
        chosen = np.zeros(len(starts), np.int64)
        for q, cands in enumerate(candidates):
            score = sims[q, cands]
            if q and self.continuity_weight:
                shift = int(starts[q] - starts[q - 1])
                shared = n - shift
                if shared > 0:
                    prev = self.pose_windows[chosen[q - 1], shift:]
                    mismatch = np.abs((self.pose_windows[cands, :shared] - prev) * scale).mean((1, 2))
                    score = score - self.continuity_weight * mismatch
            chosen[q] = cands[int(np.argmax(score))]   # argmax: first of equals, deterministic
        return chosen

    def retrieve(self, frame_audio: np.ndarray, exclude_margin: int | None = None) -> np.ndarray:
        """frame_audio (T, steps * D), normalised like the database's (`normalise_audio`) ->
        (T, P) pose offsets from the identity's mean."""
        t = frame_audio.shape[0]
        chex.assert_shape(frame_audio, (None, self.db.audio.shape[1] * self.db.steps_per_frame))
        starts = query_starts(t, self.db.window, self.overlap)
        chosen = self.select(self.similarity(frame_audio, starts), starts, exclude_margin)
        return overlap_add(self.pose_windows[chosen], starts, t, self.overlap)


def normalise_audio(db: PoseDatabase, rows: np.ndarray) -> np.ndarray:
    """Raw feature rows (steps * T, D) -> (T, steps * D) normalised with the database's statistics."""
    steps = db.steps_per_frame
    t = rows.shape[0] // steps
    z = (np.asarray(rows[:steps * t], np.float32) - db.audio_mean) / db.audio_std
    return z.reshape(t, -1)
