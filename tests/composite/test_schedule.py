"""pingpong_indices: the one forward-backward schedule shared by the replayed head pose
and the body loop."""
from __future__ import annotations

import numpy as np
import pytest

from flashtalker_jax.composite.schedule import pingpong_indices


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
