"""pingpong_indices: the one forward-backward schedule shared by the replayed head pose
and the body loop; follow_indices: the body-loop frames that follow a generated pose."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from flashtalker_jax.composite.schedule import follow_indices, pingpong_indices


def test_sequence_for_four_frames():
    expected = [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]
    np.testing.assert_array_equal(pingpong_indices(0, 14, 4), expected)
    np.testing.assert_array_equal(pingpong_indices(5, 4, 4), expected[5:9])   # a later chunk


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_continuous_and_in_range(n):
    idx = pingpong_indices(0, 60, n)
    assert idx.dtype == np.int64 and idx.min() == 0 and idx.max() == n - 1
    assert np.all(np.abs(np.diff(idx)) == 1)                 # never a jump, never a hold
    # chunks streamed one after another give the same frames as one long call
    chunks = np.concatenate([pingpong_indices(s, 7, n) for s in range(0, 63, 7)])
    np.testing.assert_array_equal(chunks[:60], idx)


def test_single_frame_is_a_still():
    np.testing.assert_array_equal(pingpong_indices(3, 5, 1), np.zeros(5, np.int64))


def test_bad_arguments():
    with pytest.raises(ValueError):
        pingpong_indices(0, 3, 0)
    with pytest.raises(ValueError):
        pingpong_indices(0, -1, 3)
    assert pingpong_indices(0, 0, 3).shape == (0,)


def test_to_flame_params_uses_it(monkeypatch):
    """The head pose replay picks the frames pingpong_indices picks (values and the call)."""
    from flashtalker_jax.motion import inference

    n, t, start = 5, 13, 3
    track = {"rotation": np.arange(n, dtype=np.float32)[:, None].repeat(3, 1),
             "translation": np.zeros((n, 3), np.float32)}
    motion = np.zeros((t, 10 + 3), np.float32)
    params = inference.to_flame_params(motion, track, np.zeros(4, np.float32), start=start)
    np.testing.assert_array_equal(params["rotation"][:, 0], pingpong_indices(start, t, n))

    calls = []

    def spy(*args):
        calls.append(args)
        return pingpong_indices(*args)

    monkeypatch.setattr(inference, "pingpong_indices", spy)
    inference.to_flame_params(motion, track, np.zeros(4, np.float32), start=start)
    assert calls == [(start, t, n)]


# ------------------------------------------------------------------ follow_indices

def path_cost(path, target, recorded, hold_cost, turn_cost, skip_cost):
    """The objective of follow_indices written out for one path (the reference)."""
    path = np.asarray(path)
    total = float(((target - recorded[path]) ** 2).sum())
    steps = np.diff(path)
    for s in steps:
        total += hold_cost if s == 0 else skip_cost * (abs(s) - 1)
    total += turn_cost * int(np.count_nonzero(steps[1:] != steps[:-1]))
    return total


def brute_force(target, recorded, max_step, **costs):
    """Every index path with steps in [-max_step, max_step]: the cheapest (first on ties)."""
    n = recorded.shape[0]
    best, best_path = np.inf, None
    for path in itertools.product(range(n), repeat=target.shape[0]):
        if np.abs(np.diff(path)).max(initial=0) > max_step:
            continue
        cost = path_cost(path, target, recorded, **costs)
        if cost < best:
            best, best_path = cost, path
    return best, np.asarray(best_path)


@pytest.mark.parametrize("case_seed,n,t,max_step,hold,turn,skip", [
    (0, 4, 6, 1, 0.3, 0.5, 0.0),
    (1, 5, 5, 1, 0.0, 2.0, 0.0),     # free holds: turns alone shape the path
    (2, 3, 7, 1, 1.0, 0.0, 0.0),     # free turns: the +1/-1 shiver is allowed
    (3, 5, 5, 2, 0.2, 0.4, 0.3),     # skips of two frames
    (4, 1, 5, 1, 0.5, 0.5, 0.0),     # one recorded frame
])
def test_matches_brute_force(case_seed, n, t, max_step, hold, turn, skip):
    """The Viterbi path costs exactly what the cheapest of all paths costs, and is that path
    (random real costs: ties have probability zero). Tolerance: float64 sums of < 20 terms."""
    rng = np.random.default_rng(case_seed)
    recorded = rng.normal(size=(n, 3))
    target = rng.normal(size=(t, 3))
    costs = dict(hold_cost=hold, turn_cost=turn, skip_cost=skip)
    path = follow_indices(target, recorded, max_step=max_step, **costs)
    best, best_path = brute_force(target, recorded, max_step, **costs)
    assert path.dtype == np.int64 and path.shape == (t,)
    assert path_cost(path, target, recorded, **costs) == pytest.approx(best, rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(path, best_path)


def test_follows_a_recorded_segment_exactly():
    """A target that IS recorded frames 7..26 played forward (or backward) gets exactly
    those frames: zero distance, no holds, no turns (recorded poses distinct)."""
    rng = np.random.default_rng(5)
    recorded = np.cumsum(rng.normal(size=(40, 6)), 0)      # a wandering pose, like a head
    costs = dict(hold_cost=0.1, turn_cost=1.0)
    np.testing.assert_array_equal(follow_indices(recorded[7:27], recorded, **costs), np.arange(7, 27))
    np.testing.assert_array_equal(follow_indices(recorded[26:6:-1], recorded, **costs), np.arange(26, 6, -1))


def test_longer_than_the_loop_stays_continuous():
    """A target 10x the loop's length: steps within max_step, every frame in range, and
    the same answer on a second call (deterministic)."""
    rng = np.random.default_rng(6)
    recorded = np.cumsum(rng.normal(size=(12, 3)), 0)
    target = np.cumsum(rng.normal(size=(120, 3)), 0) * 0.3
    path = follow_indices(target, recorded, hold_cost=0.5, turn_cost=2.0)
    assert path.min() >= 0 and path.max() < 12
    assert np.abs(np.diff(path)).max() <= 1
    np.testing.assert_array_equal(path, follow_indices(target, recorded, hold_cost=0.5, turn_cost=2.0))
    wide = follow_indices(target, recorded, hold_cost=0.5, turn_cost=2.0, max_step=2, skip_cost=0.1)
    assert np.abs(np.diff(wide)).max() <= 2


def test_still_target_holds_rather_than_shivers():
    """A constant target halfway between two recorded poses: without a turn cost +1/-1
    alternation between them is cheaper than a hold (0.25 a frame either way, plus the
    hold's cost); with one the path settles on one frame."""
    recorded = np.array([[0.0], [1.0], [2.0], [3.0]])
    target = np.full((30, 1), 1.5)
    shiver = follow_indices(target, recorded, hold_cost=0.05, turn_cost=0.0)
    assert np.all(np.abs(np.diff(shiver)) == 1)
    path = follow_indices(target, recorded, hold_cost=0.05, turn_cost=1.0)
    assert np.count_nonzero(np.diff(path)) == 0 and path[0] in (1, 2)


def test_single_recorded_frame_and_empty_target():
    np.testing.assert_array_equal(follow_indices(np.ones((4, 2)), np.zeros((1, 2)), hold_cost=1, turn_cost=1),
                                  np.zeros(4, np.int64))
    assert follow_indices(np.zeros((0, 2)), np.zeros((3, 2)), hold_cost=1, turn_cost=1).shape == (0,)


def test_follow_bad_arguments():
    with pytest.raises(ValueError, match="share k"):
        follow_indices(np.zeros((3, 2)), np.zeros((4, 3)), hold_cost=1, turn_cost=1)
    with pytest.raises(ValueError, match="at least one"):
        follow_indices(np.zeros((3, 2)), np.zeros((0, 2)), hold_cost=1, turn_cost=1)
    with pytest.raises(ValueError, match="max_step"):
        follow_indices(np.zeros((3, 2)), np.zeros((4, 2)), hold_cost=1, turn_cost=1, max_step=0)
    with pytest.raises(ValueError, match="costs"):
        follow_indices(np.zeros((3, 2)), np.zeros((4, 2)), hold_cost=-1, turn_cost=1)
    with pytest.raises(ValueError, match="finite"):
        follow_indices(np.full((3, 2), np.nan), np.zeros((4, 2)), hold_cost=1, turn_cost=1)
