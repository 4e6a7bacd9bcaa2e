"""Any-length motion from fixed-size windows, streamed: each window's frames are yielded as
soon as that window is computed, so memory is O(window) and the first frames exist after
one window, whatever the clip's length. Every window has the same static shape, so one
compiled function serves any length; frames past either end of the audio are padding
(frame_mask False, audio rows zero) and are never yielded.

Two schemes, one per model kind:
- `sample_windows` (diffusion prior, DiffPoseTalk's scheme): window k produces frames
  [k W, k W + W). It sees the audio of frames [k W - C, k W + W) and, as context, the C
  frames its predecessor produced just before k W (the first window has none: context_mask
  False). Each window starts where the previous one ended and is conditioned on its last
  frames, so the stitched motion has no seams.
- `causal_windows` (Audio2Param, a causal model trained on crops of a fixed length): window
  k runs the model on frames [k H - C, k H + H) and keeps the last H; the first C frames are
  warm-up history (the model is causal, so they shape what follows but are re-predicted
  with too little history of their own). Truncating history changes the estimate, so two
  neighbouring windows disagree slightly where they meet; the last `overlap` frames of
  window k are held back and cross-faded linearly into window k+1's estimate of the same
  frames, which spreads that disagreement over overlap + 1 frame steps instead of one jump.
  With C a multiple of FaceFormer's PPE period the positional codes of every frame equal
  its full-sequence codes, so a clip shorter than one window gives exactly the
  full-sequence result (the masked warm-up rows are invisible to the valid frames).
"""
from __future__ import annotations

from typing import Callable, Iterator

import jax
import numpy as np

from flashtalker_jax.audio.windowed import AudioRows, rows_of

# window_fn(key, context (1,C,P), context_mask (1,), audio (1, s (C+W), D), frame_mask (1,W)) -> (1,W,P)
WindowFn = Callable[[jax.Array, np.ndarray, np.ndarray, np.ndarray, np.ndarray], jax.Array]
# causal_fn(audio (1, s L, D), frame_mask (1, L)) -> (1, L, P), L = context + hop
CausalFn = Callable[[np.ndarray, np.ndarray], jax.Array]


def num_windows(num_frames: int, hop: int) -> int:
    return max(1, -(-num_frames // hop))


def sample_windows(window_fn: WindowFn, audio_rows: AudioRows, num_frames: int, motion_dim: int,
                   window: int, context: int, key: jax.Array) -> Iterator[np.ndarray]:
    """Yield the motion of frames [0, num_frames) window by window: (<= window, motion_dim) each."""
    previous = np.zeros((window, motion_dim), np.float32)
    for k in range(num_windows(num_frames, window)):
        start = k * window
        ctx = previous[None, window - context:].copy()
        frame_mask = (np.arange(start, start + window) < num_frames)[None]
        win_audio = audio_rows(start - context, context + window)[None]
        previous = np.asarray(window_fn(jax.random.fold_in(key, k), ctx, np.array([k > 0]), win_audio,
                                        frame_mask)[0], np.float32)
        yield previous[:min(window, num_frames - start)]


def sample_long(window_fn: WindowFn, audio: np.ndarray, num_frames: int, motion_dim: int,
                window: int, context: int, steps_per_frame: int, key: jax.Array) -> np.ndarray:
    """(num_frames, motion_dim) motion for audio (steps_per_frame * num_frames, D), all at once."""
    rows = rows_of(audio, steps_per_frame, num_frames)
    return np.concatenate(list(sample_windows(window_fn, rows, num_frames, motion_dim, window, context, key)))


def crossfade_weights(overlap: int) -> np.ndarray:
    """Weight of the later window on each of `overlap` shared frames: (i + 1) / (overlap + 1),
    so the ramp starts one step after the earlier window alone and ends one step before the
    later window alone."""
    return (np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1))[:, None]


def causal_windows(causal_fn: CausalFn, audio_rows: AudioRows, num_frames: int, hop: int,
                   context: int, overlap: int) -> Iterator[np.ndarray]:
    """Yield the motion of frames [0, num_frames) of a causal model run on windows of
    context + hop frames (module docstring); chunks of <= hop rows, every frame exactly once."""
    if not 0 <= overlap <= min(context, hop):
        raise ValueError(f"overlap {overlap} must be within [0, min(context {context}, hop {hop})]")
    fade = crossfade_weights(overlap)
    held = None  # the previous window's estimate of its last `overlap` frames
    count = num_windows(num_frames, hop)
    for k in range(count):
        start = k * hop
        frames = np.arange(start - context, start + hop)
        frame_mask = ((frames >= 0) & (frames < num_frames))[None]
        out = np.asarray(causal_fn(audio_rows(start - context, context + hop)[None], frame_mask)[0], np.float32)
        if held is not None and overlap:
            yield held * (1 - fade) + out[context - overlap:context] * fade
        own = out[context:]
        if k == count - 1:
            yield own[:num_frames - start]
        else:
            yield own[:hop - overlap]
            held = own[hop - overlap:]
