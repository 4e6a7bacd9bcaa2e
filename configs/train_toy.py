"""Toy regression run: the trainer's smoke test and benchmark (`flashtalker train`)."""
import ml_collections


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
    config.optim = ml_collections.ConfigDict(dict(
        name="adamw", lr=3e-3, schedule="warmup_cosine", warmup_steps=20, decay_steps=0,
        end_lr_fraction=0.1, b1=0.9, b2=0.999, weight_decay=1e-4, momentum=0.0, clip_norm=1.0,
    ))
    config.train = ml_collections.ConfigDict(dict(
        steps=300,
        seed=0,
        log_every=20,
        checkpoint_every=100,
        keep_checkpoints=3,
        async_checkpoint=True,
        max_nonfinite=10,     # stop after this many non-finite steps in a row
        init_from="",         # checkpoints/ folder of another run to take params from
        init_from_prefix="params",  # leaf-path prefix in that checkpoint
        init_into="",         # leaf-path prefix in this model's params ("" = all)
    ))
    config.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
    return config
