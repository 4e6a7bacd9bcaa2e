"""A tiny procedural dataset (2 identities, 64x64 frames, 2 s, one shared FLAME head) and a
motion encoder trained on it for a few steps (preset quick), built once per session."""
import pytest


@pytest.fixture(scope="session")
def encoder_dataset(tmp_path_factory):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.dataset import synthesize_dataset

    out = tmp_path_factory.mktemp("encoder") / "ds"
    cfg = load_config("data_synth", ["render.width=64", "render.height=64", "render.texture_size=256",
                                     "render.workers=1"])  # tiny frames: no process pool
    synthesize_dataset(out, 2, 2.0, 0, cfg, show_progress=False)
    return out


@pytest.fixture(scope="session")
def encoder_run(encoder_dataset, tmp_path_factory):
    """(run folder, pretrain summary) of 80 quick steps with the temporal head on and no
    augmentation: 80 steps must show the loss falling on 2 identities (augmentation is
    for generalising to new footage; tests/encoder/test_encoder.py checks its geometry)."""
    from flashtalker_jax.config import load_config
    from flashtalker_jax.encoder.job import pretrain

    run = tmp_path_factory.mktemp("encoder_run") / "run"
    config = load_config("motion_encoder:quick", [f"task.dataset={encoder_dataset}", "task.window=4",
                                                  "task.model.temporal_kernel=3", "train.steps=80", "task.augment.enabled=False",
                                                  "optim.lr=3e-3"])
    return run, pretrain(config, run)
