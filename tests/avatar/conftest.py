"""A tiny generated identity (procedural FLAME head, espeak speech, 64x64 frames) shared by
the avatar tests: generated once per session with the data issue's synthesiser.
tests/utils holds helpers shared with other areas (lpips_weights)."""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))


@pytest.fixture(scope="session")
def tiny_identity(tmp_path_factory):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.identity import synthesize_identity
    from flashtalker_jax.flame.loader import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame

    root = tmp_path_factory.mktemp("identity")
    flame_dir = write_procedural_flame(root / "head", seed=0)
    cfg = load_config("data_synth", ["render.width=64", "render.height=64", "render.texture_size=256",
                                     "render.workers=1"])  # tiny frames: no process pool
    out = root / "id0"
    synthesize_identity(out, load_flame_model(flame_dir), flame_dir, 0, 0, 2.0, cfg, show_progress=False)
    shutil.copytree(flame_dir, out / "flame")
    return out
