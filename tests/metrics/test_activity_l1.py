"""Mean absolute error (L1) and the speech-vs-silence opening gap on hand-computed values."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.metrics.image import mean_abs_error
from flashtalker_jax.metrics.lip import speech_opening_gap


def test_mean_abs_error_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 8, 9, 3), dtype=np.float32)
    # float32 sums of ~200 values in [0, 1]: 1e-6 absolute covers the rounding.
    np.testing.assert_allclose(mean_abs_error(jnp.asarray(a), jnp.asarray(b)),
                               np.abs(a - b).mean(axis=(-3, -2, -1)), atol=1e-6)
    assert float(mean_abs_error(jnp.zeros((4, 4, 3)), jnp.full((4, 4, 3), 0.25))) == 0.25


def test_speech_opening_gap_hand_values():
    opening = np.array([1.0, 3.0, 5.0, 2.0])
    speaking = np.array([False, True, True, False])
    assert speech_opening_gap(opening, speaking) == pytest.approx(4.0 - 1.5)
    assert math.isnan(speech_opening_gap(opening, np.ones(4, bool)))  # no silence to contrast
    assert math.isnan(speech_opening_gap(opening, np.zeros(4, bool)))
