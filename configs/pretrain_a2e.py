"""GGTalker audio-to-expression diffusion prior: pretraining on many identities
(`flashtalker pretrain-a2e`). `--config.preset=tiny` applies `presets.tiny` (a small CPU
model for tests and smoke runs), `--config.preset=cpu` the recipe measured in BENCHMARKS.md
(A2E section, 24 procedural identities on 2 CPU cores); explicit overrides still win."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.preset = "full"
    c.task = ml_collections.ConfigDict(dict(
        name="a2e_prior",
        dataset="",             # folder of identity folders (VHAP layout); set by --data
        max_identities=-1,      # use the first N identities (-1: all)
        n_expr=8,               # expression coefficients predicted (8 drive the procedural head;
                                # 100 for tracked real FLAME)
        features="log_mel",     # or "wav2vec2" (then wav2vec2_dir = a local checkpoint folder)
        wav2vec2_dir="",
        feature_cache="",       # folder for cached features ("" = recompute)
        flame_dir="",           # FLAME folder ("" = <dataset>/flame)
        batch_size=32,          # global batch of windows
        min_frames=25,          # a training window keeps at least this many real frames
        data_seed=0,
        freeze=(),              # parameter path prefixes with no gradient (adaptation)
    ))
    # Recording conditions the clean espeak speech lacks (flashtalker_jax/audio/augment.py):
    # random gain and a white/pink/brown noise floor snr_db under the speech, per window.
    c.task.augment = ml_collections.ConfigDict(dict(
        prob=0.8, gain_db=(-12.0, 12.0), snr_db=(10.0, 50.0), noise_kinds=("white", "pink", "brown")))
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
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", lr=2e-4, schedule="warmup_cosine", warmup_steps=200, decay_steps=0,
        end_lr_fraction=0.05, b1=0.9, b2=0.99, weight_decay=1e-4, momentum=0.0, clip_norm=1.0,
    ))
    c.train = ml_collections.ConfigDict(dict(
        steps=20000, seed=0, log_every=50, checkpoint_every=1000, keep_checkpoints=2,
        async_checkpoint=True, max_nonfinite=10, init_from="", init_from_prefix="params", init_into="",
    ))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
    c.presets = ml_collections.ConfigDict(dict(tiny=(
        "task.model.d_model=64", "task.model.num_heads=4", "task.model.encoder_layers=1",
        "task.model.decoder_layers=2", "task.model.ff_mult=2", "task.model.id_dim=16",
        "task.model.num_identities=8", "task.model.window=50", "task.model.context=5",
        "task.model.diffusion_steps=100", "task.batch_size=8", "task.sample.steps=5",
        "optim.warmup_steps=10", "optim.lr=1e-3", "train.steps=100", "train.log_every=10",
        "train.checkpoint_every=100",
    ), cpu=(
        # The CPU benchmark recipe (BENCHMARKS.md, A2E): 24 procedural identities, 2 cores.
        "task.model.d_model=128", "task.model.num_heads=4", "task.model.encoder_layers=2",
        "task.model.decoder_layers=4", "task.model.ff_mult=2", "task.model.num_identities=32",
        "task.batch_size=16", "optim.lr=1e-3", "optim.warmup_steps=50", "train.steps=5000",
        "train.checkpoint_every=500",
    )))
    return c
