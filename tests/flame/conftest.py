"""Shared fixtures: one procedural FLAME folder per test session (about 10 s to build)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def flame_dir(tmp_path_factory):
    from flashtalker_jax.flame.procedural import write_procedural_flame
    return write_procedural_flame(tmp_path_factory.mktemp("procedural_head"), seed=0)


@pytest.fixture(scope="session")
def flame_model(flame_dir):
    from flashtalker_jax.flame import load_flame_model
    return load_flame_model(flame_dir)
