"""Talk2Me's head pose from audio for one identity (`flashtalker adapt-pose`): the audio-pose
database of its tracked video and the Pose Refiner trained on it (trainer task
"pose_refiner", flashtalker_jax/motion/pose/).

Defaults are the GPU-sized refiner. Presets: `cpu` (minutes on a few cores), `quick`
(tests and CI: a tiny refiner, seconds).
"""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    t = config.task = ml_collections.ConfigDict()
    t.name = "pose_refiner"
    t.data = ""                 # the identity's tracked VHAP folder (set by --data)
    t.window = 25               # N: 1 s units at 25 fps: a nod or a turn takes 0.5-1.5 s, so a
                                # unit holds a whole gesture, and 1 s of log-mel statistics is
                                # enough speech (3-5 syllables) to rank prosody
    t.overlap = 10              # cross-fade of 0.4 s between units: the largest step of the
                                # stitched track stays below the database's own (measured on
                                # news_anchor_71s: 1.45 vs 2.50 pose std); overlap 6 keeps more
                                # variance (std 0.65 vs 0.59 of the real) but steps alike
    t.db_stride = 5             # a database unit starts every 5 frames (0.2 s): ~320 units from
                                # 65 s; denser adds near-duplicates, not new motion
    t.top_k = 8                 # the continuity step picks among the 8 best audio matches
    t.continuity_weight = 0.5   # cosine - 0.5 x mean |overlap mismatch| (pose std units)
    t.exclude_margin = 25       # training retrieval skips units within 1 s of the query's own
                                # frames: neighbours share its motion and would teach copying
    t.n_expr = 10               # expression coefficients fused with the pose (+ jaw, 3): the
                                # first FLAME components carry the mouth / brow motion a head
                                # movement co-occurs with; motion runs predict >= 8
    t.refine = False            # speak / eval-pose "generated" = retrieval alone. Measured on
                                # news_anchor_71s (cpu preset, 2026-12-07): the refiner trained on
                                # one 65 s identity overfits its windows (held-out velocity ratio
                                # 1.5, jitter 2.3x the real; retrieval alone 1.18, 1.3x); set True
                                # for a refiner trained on more data. eval-pose scores both.
    t.train_stride = 1          # every window start of the train split is a training example
    t.batch_size = 32
    t.data_seed = 0
    m = t.model = ml_collections.ConfigDict()
    m.d_model = 64              # a refiner of a 6-d residual: Talk2Me's "lightweight" linear +
    m.kron_dim = 12             # one transformer layer; 12^2 = 144 pose x expression products
    m.num_heads = 4
    m.layers = 2
    m.ff_mult = 2
    m.disc_width = 32
    w = t.loss = ml_collections.ConfigDict()
    w.rec = 10.0                # Talk2Me eq. 12: lambda_rec = 10
    w.vel = 1.0                 # lambda_vel = 1
    w.velocity_target = "true"  # match the true velocity ("zero": the paper's L1(v, 0), which damps
                                # motion; refiner.py docstring)
    w.gan = 0.1                 # generator adversarial weight (0 disables the discriminator)
    w.disc = 1.0                # discriminator loss weight (its own parameters only)
    config.optim = common.optim("adam", 1e-3, warmup_steps=50, clip_norm=1.0)  # clipping: the GAN term
    # can spike early; Adam 1e-3 is the usual rate of small transformers
    config.train = common.train(3000, log_every=100, checkpoint_every=1000)
    config.mesh = common.mesh()
    return common.with_preset(config, preset, {"cpu": _cpu, "quick": _quick})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """CPU-sized: 600 steps of the same refiner (~2 min on 2 busy cores)."""
    config.train.update(steps=600, log_every=50, checkpoint_every=300)


def _quick(config: ml_collections.ConfigDict) -> None:
    """Tests and CI: a one-layer refiner of width 16, 20 steps."""
    config.task.update(batch_size=8, train_stride=3)
    config.task.model.update(d_model=16, kron_dim=4, num_heads=2, layers=1, disc_width=8)
    config.optim.update(lr=3e-3, warmup_steps=0)    # few steps: a larger rate shows learning
    config.train.update(steps=20, log_every=5, checkpoint_every=10, keep_checkpoints=1)
    config.train.async_checkpoint = False   # tests read the run folder right after fit returns
