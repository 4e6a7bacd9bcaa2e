"""Which recorded frame plays at each output frame when the output outlasts the recording.

A recording of n frames is played forward then backward, 0 .. n-1, n-2 .. 1, 0, 1 ...
(period 2n - 2): unlike a wrap-around loop it never jumps from the last frame to the
first, so the head pose and the body behind it move continuously (consecutive indices
differ by at most 1). The replayed head pose (motion/inference.to_flame_params) and the
torso/background loop (composite/body.py) must pick the SAME frame at every output frame,
or the pasted head drifts against its own neck: both call this one function.
"""
from __future__ import annotations

import numpy as np


def pingpong_indices(start: int, count: int, n: int) -> np.ndarray:
    """Recorded frame of output frames [start, start + count) -> (count,) int64 in [0, n).

    n == 1 gives all zeros (a one-frame recording is a still)."""
    if n < 1:
        raise ValueError(f"need at least one recorded frame, got n={n}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    period = max(2 * n - 2, 1)
    phase = np.arange(start, start + count, dtype=np.int64) % period
    return np.where(phase < n, phase, 2 * n - 2 - phase)
