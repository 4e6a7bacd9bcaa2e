"""Session fixtures: one tiny avatar + motion run (tests/speak/tiny.py), loaded once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    import tiny

    from flashtalker_jax.audio.features import log_mel_features
    from flashtalker_jax.flame import load_flame_model

    root = tmp_path_factory.mktemp("speak")
    ident = tiny.make_identity(root)
    import numpy as np
    rows = log_mel_features(np.zeros(1600, np.float32), 16000, 25.0)
    n_vertices = load_flame_model(ident / "flame").n_vertices
    avatar = tiny.make_avatar(ident, root / "avatar", audio_dim=2 * rows.shape[1])
    a2e = tiny.make_a2e_run(root / "a2e", audio_dim=rows.shape[1], n_vertices=n_vertices)
    return {"root": root, "identity": ident, "avatar": avatar, "a2e": a2e}


@pytest.fixture(scope="session")
def speaker(tiny_runs):
    """A loaded avatar + motion pair reused by every test (one compile of each)."""
    from flashtalker_jax.pipeline.speaker import load_speaker

    return load_speaker(tiny_runs["avatar"], tiny_runs["a2e"], batch_size=4)
