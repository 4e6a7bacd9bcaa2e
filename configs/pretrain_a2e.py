"""GGTalker audio-to-expression diffusion prior: pretraining on many identities
(`flashtalker pretrain-a2e`). Presets: `pretrain_a2e.py:tiny` (a small CPU model for tests
and smoke runs), `pretrain_a2e.py:cpu` (the recipe measured in BENCHMARKS.md, A2E section,
24 procedural identities on 2 CPU cores); explicit overrides still win."""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = common.motion_task("a2e_prior", batch_size=32)
    c.task.model = ml_collections.ConfigDict(dict(
        d_model=512, num_heads=8, encoder_layers=2, decoder_layers=8, ff_mult=4,
        id_dim=64, num_identities=64,   # style rows (row 0 = "any speaker")
        window=100, context=10,         # DiffPoseTalk windows: 100 frames + 10 context frames
        steps_per_frame=2, align_radius=0,
        diffusion_steps=500,
    ))
    c.task.loss = ml_collections.ConfigDict(dict(
        regression=1.0,          # x0 regression on normalised [expr | jaw]
        temporal=0.5,            # Huber on adjacent-frame differences
        temporal_delta=0.1,
        lip=0.01,                # lip-vertex squared error in mm^2 (lips move ~10 mm)
        cond_drop=0.1,           # classifier-free guidance condition dropout
        identity_drop=0.2,       # style -> row 0 ("any speaker") so unseen identities have a style
        vertex=0.0,              # (Audio2Param only)
    ))
    c.task.sample = ml_collections.ConfigDict(dict(steps=10, guidance=1.5, seed=0))
    c.optim = common.optim("adamw", 2e-4, warmup_steps=200, b2=0.99, weight_decay=1e-4, clip_norm=1.0)
    c.train = common.train(20000)
    c.mesh = common.mesh()
    return common.with_preset(c, preset, {"tiny": _tiny, "cpu": _cpu})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.task.model.update(d_model=64, num_heads=4, encoder_layers=1, decoder_layers=2, ff_mult=2, id_dim=16,
                        num_identities=8, window=50, context=5, diffusion_steps=100)
    c.task.batch_size = 8
    c.task.sample.steps = 5
    c.optim.update(warmup_steps=10, lr=1e-3)
    c.train.update(steps=100, log_every=10, checkpoint_every=100)


def _cpu(c: ml_collections.ConfigDict) -> None:
    # The CPU benchmark recipe (BENCHMARKS.md, A2E): 24 procedural identities, 2 cores.
    c.task.model.update(d_model=128, num_heads=4, encoder_layers=2, decoder_layers=4, ff_mult=2,
                        num_identities=32)
    c.task.batch_size = 16
    c.optim.update(lr=1e-3, warmup_steps=50)
    c.train.update(steps=5000, checkpoint_every=500)
