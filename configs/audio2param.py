"""GaussianHeadTalk's Audio2Param baseline (`flashtalker pretrain-a2e --config
configs/audio2param.py`). Same data blocks and presets as configs/pretrain_a2e.py
(`audio2param.py:tiny` for tests, `audio2param.py:cpu` for the BENCHMARKS.md baseline,
`audio2param.py:bundled` for the motion prior shipped with the package, configs/motion_prior.py)."""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = common.motion_task("audio2param", batch_size=32)
    c.task.model = ml_collections.ConfigDict(dict(
        d_model=256, num_heads=4, audio_layers=1,   # a shallow audio encoder (log-mel has little context)
        decoder_layers=2, ff_mult=2, period=25,     # FaceFormer PPE period = 1 s at 25 fps
        steps_per_frame=2, align_radius=0,
        window=100,                                  # training crop length (inference: any length)
        num_identities=64,
    ))
    c.task.loss = ml_collections.ConfigDict(dict(
        vertex=1.0,        # Eq. 6: squared error (mm^2) on jaw-driven vertices
        regression=0.1,    # keeps channels that move no jaw-driven vertex (brows, blinks) sane
    ))
    c.task.sample = ml_collections.ConfigDict(dict(steps=0, guidance=0.0, seed=0))
    c.optim = common.optim("adamw", 3e-4, warmup_steps=200, b2=0.99, weight_decay=1e-4, clip_norm=1.0)
    c.train = common.train(10000)
    c.mesh = common.mesh()
    return common.with_preset(c, preset, {"tiny": _tiny, "cpu": _cpu, "bundled": _bundled})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.task.model.update(d_model=32, num_heads=2, decoder_layers=1, window=50, num_identities=8)
    c.task.batch_size = 8
    c.optim.update(warmup_steps=10, lr=1e-3)
    c.train.update(steps=100, log_every=10, checkpoint_every=100)


def _cpu(c: ml_collections.ConfigDict) -> None:
    # The CPU benchmark baseline (BENCHMARKS.md, A2E): same data as pretrain_a2e's cpu preset.
    c.task.model.update(d_model=96, audio_layers=2, decoder_layers=2, num_identities=32)
    c.task.batch_size = 16
    c.optim.update(lr=1e-3, warmup_steps=50)
    c.train.update(steps=1200, checkpoint_every=400)


def _bundled(c: ml_collections.ConfigDict) -> None:
    # The bundled motion prior (configs/motion_prior.py, launch/train_motion_prior.py): the cpu
    # recipe, sized to train in minutes on 2 CPU cores; BENCHMARKS.md "Bundled motion prior".
    _cpu(c)
    c.train.update(steps=1500, checkpoint_every=500, log_every=50, async_checkpoint=False)
