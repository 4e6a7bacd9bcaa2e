"""Stability score: hand-computed cases, monotonicity under jitter, and on real frames.

Hand-computed values are exact in float32 up to FFT rounding (~1e-6 relative), so 1e-5
absolute is used.
"""

import numpy as np
import pytest

from flashtalker_jax.metrics import stability
from flashtalker_jax.metrics.landmarks import NUM_LANDMARKS, track_faces


def _head_track(frames=50, points=10, seed=0):
    """Smooth head motion (0.4 Hz and 1.1 Hz at 25 fps) of a rigid set of nose points."""
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    offsets = np.random.default_rng(seed).uniform(-20, 20, (1, points, 2)).astype(np.float32)
    motion = np.concatenate([6 * np.sin(2 * np.pi * 0.4 * t / 25),
                             3 * np.sin(2 * np.pi * 1.1 * t / 25 + 1.0)], axis=-1)
    return 256 + offsets + motion


def test_identical_tracks_score_zero():
    track = _head_track()
    terms = stability.stability_terms(track, track)
    for name, value in terms.items():
        assert float(value) == 0.0, name


def test_constant_velocity_error_hand_computed():
    t = np.arange(9, dtype=np.float32)
    gt = np.stack([t, np.zeros_like(t)], -1)[:, None]  # 1 px/frame
    gen = np.stack([2 * t, np.zeros_like(t)], -1)[:, None]  # 2 px/frame
    terms = stability.stability_terms(gen, gt)
    # S = 1; M_d = 1; no variability; the difference is pure DC so no high frequency.
    assert float(terms["motion_difference"]) == pytest.approx(1.0, abs=1e-5)
    assert float(terms["motion_variability"]) == pytest.approx(0.0, abs=1e-5)
    assert float(terms["high_frequency"]) == pytest.approx(0.0, abs=1e-5)
    assert float(terms["score"]) == pytest.approx(1 / 3, abs=1e-5)


def test_alternating_wobble_hand_computed():
    t = np.arange(9, dtype=np.float32)  # 8 motion steps: the alternation is the Nyquist bin
    gt = np.stack([t, np.zeros_like(t)], -1)[:, None]
    gen = gt + np.stack([0.25 * (-1.0) ** t, np.zeros_like(t)], -1)[:, None]
    terms = stability.stability_terms(gen, gt)
    # v_gen = 1 -/+ 0.5: difference magnitude 0.5 everywhere, all at 12.5 Hz; std(s_gen) 0.5.
    assert float(terms["motion_difference"]) == pytest.approx(0.5, abs=1e-5)
    assert float(terms["motion_variability"]) == pytest.approx(0.5, abs=1e-5)
    assert float(terms["high_frequency"]) == pytest.approx(0.5, abs=1e-5)
    assert float(terms["score"]) == pytest.approx(0.5, abs=1e-5)


def test_constant_offset_is_not_instability():
    track = _head_track()
    assert float(stability.stability_score(track + 7.0, track)) == pytest.approx(0.0, abs=1e-5)


def test_more_jitter_scores_worse():
    track = _head_track()
    noise = np.random.default_rng(1).standard_normal((track.shape[0], 1, 2)).astype(np.float32)
    scores = [float(stability.stability_score(track + a * noise, track)) for a in (0, 0.5, 1, 2)]
    assert scores[0] == 0.0
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


def test_bad_arguments_are_clear():
    track = _head_track(frames=2)
    with pytest.raises(ValueError, match="at least 3 frames"):
        stability.stability_score(track, track)
    with pytest.raises(ValueError, match="cutoff_hz"):
        stability.stability_score(_head_track(), _head_track(), cutoff_hz=20.0)


def test_missing_faces_are_reported():
    gen = np.zeros((5, NUM_LANDMARKS, 3), np.float32)
    gt = gen.copy()
    gen[3] = np.nan
    with pytest.raises(ValueError, match=r"no face in frames \[3\] of the generated video"):
        stability.stability_from_landmarks(gen, gt)


def test_real_video_jitter_scores_worse(may_frames, landmarker_path, shift_frame):
    frames = may_frames[:16]
    shifts = np.random.default_rng(2).integers(-1, 2, (len(frames), 2))  # in {-1, 0, 1}
    gt = track_faces(frames, landmarker_path).landmarks
    scores = []
    for amplitude in (0, 3, 8):
        jittered = [shift_frame(f, int(amplitude * dx), int(amplitude * dy))
                    for f, (dx, dy) in zip(frames, shifts)]
        gen = track_faces(jittered, landmarker_path).landmarks
        scores.append(float(stability.stability_from_landmarks(gen, gt)["score"]))
    assert scores[0] == 0.0  # identical frames are detected identically
    assert scores[0] < scores[1] < scores[2], scores
