"""Shared fixtures: one tiny procedural identity (64x64, two sentences), synthesised once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from flashtalker_jax.config import load_config  # noqa: E402

TINY = ["render.width=64", "render.height=64", "render.texture_size=256"]


@pytest.fixture(scope="session")
def tiny_config():
    return load_config("data_synth", TINY)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory, tiny_config):
    """OUT/flame + OUT/identity_000 written by `synthesize_dataset` (seed 0, ~3 s of speech)."""
    from flashtalker_jax.data.synth.dataset import synthesize_dataset

    out = tmp_path_factory.mktemp("synth")
    synthesize_dataset(out, identities=1, seconds=3.0, seed=0, cfg=tiny_config, show_progress=False)
    return out
