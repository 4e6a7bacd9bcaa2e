"""Frames without a face, scene cuts, and per-landmark weights of the fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.config import load_config
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.track.observations import FACE_OVAL, landmark_weights, observe


def _track(T: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 300, (478, 2))
    drift = np.linspace(0, 10, T)[:, None, None]
    return base[None] + drift


def test_short_gaps_are_interpolated_long_gaps_untracked(seed):
    cfg = load_config("track")
    T = 60
    lm = _track(T, seed)
    found = np.ones(T, bool)
    found[10:13] = False                       # 3 frames: interpolated
    found[30:30 + cfg.max_gap_frames + 1] = False  # one longer than allowed: untracked
    obs = observe(np.where(found[:, None, None], lm, np.nan), found, cfg, Path("clip.mp4"))
    np.testing.assert_allclose(obs.landmarks[10:13], lm[10:13], atol=1e-9)   # linear drift: exact
    assert obs.gaps == [(10, 12), (30, 30 + cfg.max_gap_frames)]
    assert not obs.untracked[10:13].any() and obs.untracked[30:30 + cfg.max_gap_frames + 1].all()
    assert obs.cuts == []


def test_mostly_faceless_clip_is_refused(seed):
    cfg = load_config("track")
    found = np.zeros(20, bool)
    found[:5] = True
    with pytest.raises(InputFileError, match="clip.mp4.*no face in 15 of 20 frames"):
        observe(_track(20, seed), found, cfg, Path("clip.mp4"))


def test_a_jump_is_reported_as_a_cut(seed):
    cfg = load_config("track")
    lm = _track(20, seed)
    lm[12:] += 150.0
    obs = observe(lm, np.ones(20, bool), cfg, Path("clip.mp4"))
    assert obs.cuts == [12]


def test_weights(embedding):
    fit_cfg = load_config("track").fit
    found = np.array([True, False, True])
    weight, held_out = landmark_weights(embedding, found, fit_cfg)
    assert weight.shape == (3, 478) and not weight[1].any()
    assert held_out.sum() > 30 and not weight[:, held_out].any()
    assert np.allclose(weight[0, list(FACE_OVAL)], fit_cfg.contour_weight)
