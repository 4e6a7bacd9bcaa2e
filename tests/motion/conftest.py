"""Tiny models shared by the motion tests; plain helpers live in motion_helpers.py."""
import sys
from pathlib import Path

import jax
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from motion_helpers import AUDIO_DIM, MOTION_DIM  # noqa: E402

from flashtalker_jax.motion.a2e_prior import A2EPrior, PriorDims  # noqa: E402
from flashtalker_jax.motion.layers import jit_init  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dims():
    return PriorDims(motion_dim=MOTION_DIM, audio_dim=AUDIO_DIM, d_model=32, num_heads=4,
                     encoder_layers=1, decoder_layers=2, ff_mult=2, id_dim=8, num_identities=3,
                     window=12, context=3)


@pytest.fixture(scope="session")
def tiny_prior(tiny_dims):
    return jit_init(lambda rngs: A2EPrior(tiny_dims, rngs), jax.random.key(0))
