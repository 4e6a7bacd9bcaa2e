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


def follow_indices(target: np.ndarray, recorded: np.ndarray, *, hold_cost: float, turn_cost: float,
                   max_step: int = 1, skip_cost: float = 0.0) -> np.ndarray:
    """Recorded frame of every output frame such that the recorded features FOLLOW the
    target features while the index moves like a playback: target (T, k), recorded (n, k)
    -> (T,) int64 in [0, n).

    Minimises, over index paths i_0 .. i_{T-1} with steps s_t = i_t - i_{t-1} in
    [-max_step, max_step],

        sum_t |target_t - recorded_{i_t}|^2                       (follow the target)
      + sum_{t>=1} step_cost(s_t)                                 (hold_cost for s = 0, 0 for
                                                                   |s| = 1, skip_cost * (|s| - 1)
                                                                   beyond: a held frame freezes
                                                                   the body, a skip speeds it up)
      + turn_cost * #{t >= 2: s_t != s_{t-1}}                     (a change of step: without it
                                                                   the cheapest way to stay near
                                                                   one pose is +1, -1, +1 ...,
                                                                   a visible shiver)

    exactly, by a Viterbi programme over the states (frame i, step that reached it): T
    iterations of O(n * (2 * max_step + 1)^2) vectorised work and a (T, n, 2 * max_step + 1)
    int8 table of back-pointers (60 s at 25 fps over a 250-frame loop: 1 MB), so a whole
    clip is one pass whatever its length, with no window seams. The costs are in the
    units of the squared feature distance. Ties go to the lowest frame and to keeping the
    step (deterministic). n == 1 gives all zeros."""
    target = np.asarray(target, np.float64)
    recorded = np.asarray(recorded, np.float64)
    if target.ndim != 2 or recorded.ndim != 2 or target.shape[1] != recorded.shape[1]:
        raise ValueError(f"target (T, k) and recorded (n, k) must share k, got {target.shape} and {recorded.shape}")
    n, t_len = recorded.shape[0], target.shape[0]
    if n < 1:
        raise ValueError("need at least one recorded frame")
    if max_step < 1:
        raise ValueError(f"max_step must be >= 1, got {max_step}")
    if min(hold_cost, turn_cost, skip_cost) < 0:
        raise ValueError(f"costs must be >= 0, got hold {hold_cost}, turn {turn_cost}, skip {skip_cost}")
    if not (np.isfinite(target).all() and np.isfinite(recorded).all()):
        raise ValueError("target and recorded features must be finite")
    if t_len == 0:
        return np.zeros(0, np.int64)
    steps = np.arange(-max_step, max_step + 1)                          # (S,)
    step_cost = np.where(steps == 0, hold_cost, skip_cost * np.maximum(np.abs(steps) - 1, 0))
    frames = np.arange(n)
    # source[j, s]: the frame step s arrived from at frame j; invalid where it leaves [0, n).
    source = frames[:, None] - steps[None, :]                           # (n, S)
    valid = (source >= 0) & (source < n)
    source = np.clip(source, 0, n - 1)
    s_idx = np.arange(len(steps))

    def distance(t):
        return ((recorded - target[t]) ** 2).sum(1)                      # (n,)

    # cost[i, s]: the cheapest path ending at frame i reached by step s. Frame 0 has no
    # step: every s holds the same cost, so the first step pays no turn.
    cost = np.repeat(distance(0)[:, None], len(steps), 1)
    back = np.zeros((t_len, n, len(steps)), np.int8)
    for t in range(1, t_len):
        prev = cost[source]                                             # (n, S, S'): at the source frame
        # keep the step (no turn) or change from the best other one (turn_cost)
        change = prev + turn_cost * (s_idx[None, None, :] != s_idx[None, :, None])
        best = np.argmin(change, axis=2)                                # (n, S): first minimum
        keep = change[np.arange(n)[:, None], s_idx[None, :], s_idx[None, :]]
        best_cost = np.take_along_axis(change, best[..., None], 2)[..., 0]
        best = np.where(keep <= best_cost, s_idx[None, :], best)         # ties keep the step
        back[t] = best
        cost = np.where(valid, best_cost + step_cost[None, :] + distance(t)[:, None], np.inf)
    path = np.zeros(t_len, np.int64)
    frame, s = np.unravel_index(int(np.argmin(cost)), cost.shape)
    for t in range(t_len - 1, -1, -1):
        path[t] = frame
        if t:
            frame, s = frame - steps[s], back[t, frame, s]
    return path
