"""Shared fixtures of the tracker tests: the procedural head and its MediaPipe embedding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.flame.procedural import generate_procedural_flame, model_from_generated

LANDMARKER = "models/face_landmarker.task"
# The root conftest's shared_data path (its fixture is per test; these fixtures are per module).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def head():
    """(generated arrays, FlameModel) of the procedural head, seed 0."""
    data = generate_procedural_flame(0)
    return data, model_from_generated(data)


@pytest.fixture(scope="module")
def canonical():
    from flashtalker_jax.track.canonical import load_canonical_mesh

    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test media absent ({SHARED_DATA})")
    return load_canonical_mesh(SHARED_DATA / LANDMARKER)


@pytest.fixture(scope="module")
def embedding(head, canonical):
    from flashtalker_jax.track.embedding import build_embedding

    data, _ = head
    model = data["model"]
    static = data["static_embedding"]
    return build_embedding(canonical, np.asarray(model["v_template"]), np.asarray(model["f"], np.int64),
                           np.asarray(static["lmk_face_idx"]), np.asarray(static["lmk_b_coords"]), data["masks"])
