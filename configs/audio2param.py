"""GaussianHeadTalk's Audio2Param baseline (`flashtalker pretrain-a2e --config
configs/audio2param.py`). Same data and presets mechanism as configs/pretrain_a2e.py
(`tiny` for tests and the demo, `cpu` for the BENCHMARKS.md baseline)."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.preset = "full"
    c.task = ml_collections.ConfigDict(dict(
        name="audio2param", dataset="", max_identities=-1, n_expr=8, features="log_mel",
        wav2vec2_dir="", feature_cache="", flame_dir="", batch_size=32, min_frames=25, data_seed=0,
        freeze=(),
    ))
    # Recording conditions the clean espeak speech lacks (flashtalker_jax/audio/augment.py):
    # random gain and a white/pink/brown noise floor snr_db under the speech, per window.
    c.task.augment = ml_collections.ConfigDict(dict(
        prob=0.8, gain_db=(-12.0, 12.0), snr_db=(10.0, 50.0), noise_kinds=("white", "pink", "brown")))
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
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", lr=3e-4, schedule="warmup_cosine", warmup_steps=200, decay_steps=0,
        end_lr_fraction=0.05, b1=0.9, b2=0.99, weight_decay=1e-4, momentum=0.0, clip_norm=1.0,
    ))
    c.train = ml_collections.ConfigDict(dict(
        steps=10000, seed=0, log_every=50, checkpoint_every=1000, keep_checkpoints=2,
        async_checkpoint=True, max_nonfinite=10, init_from="", init_from_prefix="params", init_into="",
    ))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
    c.presets = ml_collections.ConfigDict(dict(tiny=(
        "task.model.d_model=32", "task.model.num_heads=2", "task.model.decoder_layers=1",
        "task.model.window=50", "task.model.num_identities=8", "task.batch_size=8",
        "optim.warmup_steps=10", "optim.lr=1e-3", "train.steps=100", "train.log_every=10",
        "train.checkpoint_every=100",
    ), cpu=(
        # The CPU benchmark baseline (BENCHMARKS.md, A2E): same data as pretrain_a2e's cpu preset.
        "task.model.d_model=96", "task.model.audio_layers=2", "task.model.decoder_layers=2",
        "task.model.num_identities=32", "task.batch_size=16", "optim.lr=1e-3", "optim.warmup_steps=50",
        "train.steps=1200", "train.checkpoint_every=400",
    )))
    return c
