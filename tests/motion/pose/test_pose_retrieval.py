"""Retrieval: overlap-add without seams, determinism, a database's own audio -> its own poses."""
from __future__ import annotations

import numpy as np
import pytest
from pose_helpers import FPS, SR, envelope, max_step, memory_database, waveform

from flashtalker_jax.audio.features import log_mel_features
from flashtalker_jax.motion.pose.retrieval import (Retriever, normalise_audio, overlap_add, query_starts,
                                                   taper)


@pytest.fixture(scope="module")
def db():
    return memory_database(200, seed=0, window=10, stride=5)


def new_audio(db, n_frames: int, seed: int) -> np.ndarray:
    rows = log_mel_features(waveform(envelope(n_frames, seed), seed), SR, FPS)
    return normalise_audio(db, rows)


def test_query_starts_cover_the_clip():
    starts = query_starts(57, 10, 4)
    assert starts[0] == 0 and starts[-1] == 47 and np.all(np.diff(starts) <= 6)
    np.testing.assert_array_equal(query_starts(6, 10, 4), [0])   # shorter than a window


def test_overlap_add_of_a_constant_is_that_constant():
    starts = query_starts(40, 10, 4)
    out = overlap_add(np.full((len(starts), 10, 2), 3.0), starts, 40, 4)
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)
    w = taper(10, 4)
    np.testing.assert_allclose(w[:4] + w[6:], 1.0)   # sin^2 ramps sum to one across a join


def test_own_audio_returns_own_poses(db):
    # query hop (window - overlap = 5) = database stride: every query has its exact twin
    out = Retriever(db, overlap=5).retrieve(db.frame_audio())
    np.testing.assert_allclose(out, db.poses, atol=1e-6)


@pytest.mark.parametrize("n_frames", [7, 173, 650])   # shorter than a unit, ~db, 3x longer than the db
def test_no_seams_and_length(db, n_frames):
    out = Retriever(db, overlap=4).retrieve(new_audio(db, n_frames, seed=5))
    assert out.shape == (n_frames, 6) and np.isfinite(out).all()
    # the stitched track never steps further than the database's own motion (plus slack for
    # the cross-fade of two windows)
    assert max_step(out, db.pose_std) <= 1.5 * max_step(db.poses, db.pose_std)


def test_no_seams_against_hard_cuts(db):
    """The same windows pasted without the taper (overlap 0) jump at the joins; the stitched
    track's largest step is smaller."""
    audio = new_audio(db, 300, seed=6)
    smooth = Retriever(db, overlap=5, top_k=1).retrieve(audio)
    cut = Retriever(db, overlap=0, top_k=1).retrieve(audio)
    assert max_step(smooth, db.pose_std) < max_step(cut, db.pose_std)


def test_deterministic(db):
    audio = new_audio(db, 120, seed=7)
    a = Retriever(db, overlap=4).retrieve(audio)
    b = Retriever(db, overlap=4).retrieve(audio.copy())
    np.testing.assert_array_equal(a, b)


def test_leave_out_never_picks_its_own_neighbourhood(db):
    r = Retriever(db, overlap=5)
    starts = query_starts(db.frames, db.window, 5)
    chosen = r.select(r.similarity(db.frame_audio(), starts), starts, exclude_margin=10)
    assert np.all(np.abs(r.starts[chosen] - starts) >= db.window + 10)
