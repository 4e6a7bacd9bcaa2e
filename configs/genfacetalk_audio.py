"""GenFaceTalk's audio branch (`flashtalker pretrain-a2e --config configs/genfacetalk_audio.py`,
flashtalker_jax/motion/genfacetalk_audio.py): E_audio (causal dilated convolutions over
the audio features) -> x_D -> the motion encoder's expression and neck/jaw sub-encoders,
the fourth motion model beside pretrain_a2e.py, audio2param.py and talk2me_eg.py, on the
same data blocks. `--config.task.heads_from=RUN` starts the heads (and the motion
normalisation) from a trained `pretrain-motion-encoder` folder of the data's FLAME model.
Presets: `genfacetalk_audio.py:tiny` (tests and smoke runs), `genfacetalk_audio.py:cpu`
(the CPU benchmark recipe, BENCHMARKS.md); explicit overrides still win."""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = common.motion_task("genfacetalk_audio", batch_size=32)
    # A motion encoder folder (RUN or RUN/encoder): its heads + CodeStats. Measured on the a2e
    # data (BENCHMARKS.md): its gain over heads from scratch comes from the CodeStats as loss
    # units (the jaw weighs ~4x more than in data units), not from the heads' weights.
    c.task.heads_from = ""
    c.task.train_heads = True   # False: heads frozen (needs heads_from; optimiser without weight decay)
    c.task.model = ml_collections.ConfigDict(dict(
        channels=128,           # E_audio width
        kernel=3,
        dilations=(1, 2, 4),    # causal receptive field 1 + 2 (1 + 2 + 4) = 15 frames (0.6 s)
        feature=256,            # x_D width (= motion_encoder.py's model.feature; heads_from: the encoder's)
        hidden=256,             # sub-encoder width (= motion_encoder.py's model.hidden; heads_from: the encoder's)
        head_n_expr=0,          # expression head width (0 = task.n_expr; heads_from: the encoder's n_expr)
        steps_per_frame=2,
        window=100,             # training crop length (inference: any length, causal windows)
        period=25,              # inference warm-up context (frames); must cover the receptive field
        num_identities=64,      # identities listed in the run (the model has no identity input)
    ))
    c.task.loss = ml_collections.ConfigDict(dict(
        code=5.0,               # GenFaceTalk's soft FLAME-code loss weight (as motion_encoder.py)
        vertices=0.0,           # per mm^2 of squared lip-vertex distance (0: not computed)
    ))
    c.task.sample = ml_collections.ConfigDict(dict(steps=0, guidance=0.0, seed=0))   # deterministic
    # Adam without weight decay: frozen heads (train_heads=False) then get exactly zero updates.
    c.optim = common.optim("adam", 1e-3, warmup_steps=200, b2=0.99, clip_norm=1.0)
    c.train = common.train(10000)
    c.mesh = common.mesh()
    return common.with_preset(c, preset, {"tiny": _tiny, "cpu": _cpu})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.task.model.update(channels=16, feature=16, hidden=16, window=50, num_identities=8)
    c.task.batch_size = 8
    c.optim.update(warmup_steps=10, lr=3e-3)
    c.train.update(steps=100, log_every=10, checkpoint_every=100)


def _cpu(c: ml_collections.ConfigDict) -> None:
    # The CPU benchmark recipe: the other models' cpu batch and crops (16 x 100 frames);
    # ~100 CPU s. 9000 steps is Audio2Param 600 / EG 3000's budget (~270 CPU s).
    c.task.model.update(num_identities=32)
    c.task.batch_size = 16
    c.optim.update(warmup_steps=50)
    c.train.update(steps=3000, checkpoint_every=1000)
