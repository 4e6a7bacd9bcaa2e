"""metrics/pose.py against straightforward references."""
from __future__ import annotations

import numpy as np
import scipy.linalg

from flashtalker_jax.metrics import pose as pm


def frechet_reference(a, b):
    """FID's textbook form with scipy.linalg.sqrtm of s1 s2."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_frechet_matches_sqrtm_reference(seed):
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)), 0)
    b = np.cumsum(rng.normal(0.1, 2.0, size=(250, 6)), 0)
    ref = frechet_reference(np.diff(a, axis=0), np.diff(b, axis=0))
    assert abs(pm.frechet_distance(a, b) - ref) <= 1e-6 * max(1.0, abs(ref))
    assert abs(pm.frechet_distance(a, a)) < 1e-6


def test_ratios_and_jitter():
    t = np.linspace(0, 4 * np.pi, 200)[:, None]
    track = np.concatenate([np.sin(t), np.cos(t)], 1)
    assert np.isclose(pm.velocity_ratio(2 * track, track), 2.0)
    assert np.isclose(pm.acceleration_ratio(0.5 * track, track), 0.5)
    assert pm.jitter(np.arange(50.0)[:, None] * [1.0, 2.0]) < 1e-12    # a line has no jerk
    scale = np.array([2.0, 4.0])
    assert np.isclose(pm.mean_speed(track * scale, scale), pm.mean_speed(track))


def test_beat_alignment():
    assert pm.beat_alignment([10, 20], [10, 20]) == 1.0
    assert np.isclose(pm.beat_alignment([10], [13]), np.exp(-9 / 18))
    assert pm.beat_alignment([], [3]) == 0.0
    assert len(pm.motion_beats(np.zeros((40, 3)))) == 0   # a still head has no beats
    # speed peaks at frames 10 and 30: a fast move centred there
    x = np.zeros(41)
    x[10:] += 1.0
    x[30:] += 1.0
    np.testing.assert_array_equal(pm.motion_beats(x[:, None]), [10, 30])


def test_static_scores_zero_motion():
    rng = np.random.default_rng(0)
    real = np.cumsum(rng.normal(size=(100, 3)), 0)
    s = pm.pose_scores(np.repeat(real[:1], 100, 0), real, np.array([5, 50]))
    assert s["velocity_ratio"] == 0.0 and s["beat_alignment"] == 0.0 and s["jitter"] == 0.0
