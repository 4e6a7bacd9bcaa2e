"""Talk2Me's Expression Generator (`flashtalker pretrain-a2e --config configs/talk2me_eg.py`,
flashtalker_jax/motion/talk2me_eg.py), the third motion model beside pretrain_a2e.py (the
diffusion prior) and audio2param.py, on the same data blocks. Presets: `talk2me_eg.py:tiny`
(tests and smoke runs), `talk2me_eg.py:cpu` (the CPU benchmark recipe, sized like
audio2param.py:cpu); explicit overrides still win."""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = common.motion_task("talk2me_eg", batch_size=32)
    c.task.model = ml_collections.ConfigDict(dict(
        d_model=256, num_heads=4, encoder_layers=2, ff_mult=2,
        fusion_rank=8,        # K-product fusion on rank-8 projections (talk2me_eg.py says why)
        audio_context=3,      # frames of feature rows the audio encoder sees (this + 2 before)
        emotion_frames=25,    # causal mean for the emotional cue e: 1 s at 25 fps
        period=25,            # FaceFormer PPE period and ALiBi step (inference windows use it)
        smooth_taps=3,        # temporal smoothing over this and the 2 previous frames
        steps_per_frame=2,
        eye_ids=(),           # () = derived at build from FLAME_masks 'eye_region' (saved in model.json)
        eye_min_share=0.5,    # an "eye" coefficient puts >= this share of its displacement there
        window=100,           # training crop length (inference: any length, causal windows)
        num_identities=64,
    ))
    c.task.loss = ml_collections.ConfigDict(dict(
        l1=1.0,               # lambda_e of Eq. 11
        eye_weight=2.0,       # w on eye coefficients (the paper gives no value)
    ))
    c.task.sample = ml_collections.ConfigDict(dict(steps=0, guidance=0.0, seed=0))   # deterministic
    c.optim = common.optim("adamw", 3e-4, warmup_steps=200, b2=0.99, weight_decay=1e-4, clip_norm=1.0)
    c.train = common.train(10000)
    c.mesh = common.mesh()
    return common.with_preset(c, preset, {"tiny": _tiny, "cpu": _cpu})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.task.model.update(d_model=32, num_heads=2, encoder_layers=1, fusion_rank=4, window=50, num_identities=8)
    c.task.batch_size = 8
    c.optim.update(warmup_steps=10, lr=1e-3)
    c.train.update(steps=100, log_every=10, checkpoint_every=100)


def _cpu(c: ml_collections.ConfigDict) -> None:
    # Same width, batch, schedule and steps as audio2param.py:cpu (the BENCHMARKS.md comparison).
    c.task.model.update(d_model=96, encoder_layers=2, num_identities=32)
    c.task.batch_size = 16
    c.optim.update(lr=1e-3, warmup_steps=50)
    c.train.update(steps=1200, checkpoint_every=400)
