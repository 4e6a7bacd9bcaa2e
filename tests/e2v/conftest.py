"""Two tiny procedural identities (64x64 frames, 2 s) sharing one procedural FLAME head, in
the data-synth dataset layout (DS/flame, DS/identity_00k), generated once per session."""
import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.dataset import synthesize_dataset

    out = tmp_path_factory.mktemp("e2v") / "ds"
    cfg = load_config("data_synth", ["render.width=64", "render.height=64", "render.texture_size=256",
                                     "render.workers=1"])  # tiny frames: no process pool
    synthesize_dataset(out, 2, 2.0, 0, cfg, show_progress=False)
    return out


def quick_config(dataset, *overrides):
    from flashtalker_jax.config import load_config

    return load_config("pretrain_e2v:quick", [f"task.dataset={dataset}", *overrides])
