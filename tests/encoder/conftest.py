"""A motion encoder trained for a few steps (preset quick) on the root conftest's
`tiny_dataset`, built once per session."""
import pytest


@pytest.fixture(scope="session")
def encoder_run(tiny_dataset, tmp_path_factory):
    """(run folder, pretrain summary) of 80 quick steps with the temporal head on and no
    augmentation: 80 steps must show the loss falling on 2 identities (augmentation is
    for generalising to new footage; tests/encoder/test_encoder.py checks its geometry)."""
    from flashtalker_jax.config import load_config
    from flashtalker_jax.encoder.job import pretrain

    run = tmp_path_factory.mktemp("encoder_run") / "run"
    config = load_config("motion_encoder:quick", [f"task.dataset={tiny_dataset}", "task.window=4",
                                                  "task.model.temporal_kernel=3", "train.steps=80", "task.augment.enabled=False",
                                                  "optim.lr=3e-3"])
    return run, pretrain(config, run)
