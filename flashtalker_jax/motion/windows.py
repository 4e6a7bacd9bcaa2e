"""Any-length generation from a fixed-size window model (DiffPoseTalk's scheme).

Window k produces frames [k W, k W + W). It sees the audio of frames [k W - C, k W + W)
and, as context, the C frames its predecessor produced just before k W; the first window
has no context (context_mask False). Every window has the same static shape, so one
compiled function serves any length: frames past the end of the audio are padding
(frame_mask False, audio rows zero) and are cropped from the result. Because each window
starts where the previous one ended and is conditioned on that window's last frames, the
result has no seams; a clip shorter than one window is a single padded window.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

# window_fn(key, context (1,C,P), context_mask (1,), audio (1, s (C+W), D), frame_mask (1,W)) -> (1,W,P)
WindowFn = Callable[[jax.Array, np.ndarray, np.ndarray, np.ndarray, np.ndarray], jax.Array]


def window_audio(audio: np.ndarray, start: int, num_frames: int, steps_per_frame: int) -> np.ndarray:
    """Audio rows of frames [start, start + num_frames), zero rows outside the clip. (s*n, D)."""
    out = np.zeros((steps_per_frame * num_frames, audio.shape[1]), np.float32)
    lo, hi = steps_per_frame * start, steps_per_frame * (start + num_frames)
    src_lo, src_hi = max(lo, 0), min(hi, audio.shape[0])
    if src_hi > src_lo:
        out[src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
    return out


def sample_long(window_fn: WindowFn, audio: np.ndarray, num_frames: int, motion_dim: int,
                window: int, context: int, steps_per_frame: int, key: jax.Array) -> np.ndarray:
    """(num_frames, motion_dim) motion for audio (steps_per_frame * num_frames, D)."""
    if audio.shape[0] != steps_per_frame * num_frames:
        raise ValueError(f"audio has {audio.shape[0]} rows, expected {steps_per_frame} x {num_frames} frames")
    num_windows = max(1, -(-num_frames // window))
    out = np.zeros((num_windows * window, motion_dim), np.float32)
    for k in range(num_windows):
        start = k * window
        ctx = np.zeros((1, context, motion_dim), np.float32)
        if k > 0:
            ctx[0] = out[start - context:start]
        frame_mask = (np.arange(start, start + window) < num_frames)[None]
        win_audio = window_audio(audio, start - context, context + window, steps_per_frame)[None]
        result = window_fn(jax.random.fold_in(key, k), ctx, np.array([k > 0]), win_audio, frame_mask)
        out[start:start + window] = np.asarray(result[0])
    return out[:num_frames]
