"""Toy regression run: the trainer's smoke test and benchmark (`flashtalker train`)."""
import ml_collections

from flashtalker_jax.configs import common


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = ml_collections.ConfigDict(dict(
        name="toy_regression",
        num_examples=1024,
        input_dim=8,
        hidden=(64, 64),
        output_dim=4,
        batch_size=32,        # global batch; split over processes and the mesh's data axis
        input_noise=0.01,
        data_seed=0,
    ))
    config.optim = common.optim("adamw", 3e-3, warmup_steps=20, end_lr_fraction=0.1, weight_decay=1e-4,
                                clip_norm=1.0)
    config.train = common.train(300, log_every=20, checkpoint_every=100, keep_checkpoints=3)
    config.mesh = common.mesh()
    return config
