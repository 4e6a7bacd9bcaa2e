"""GenFaceTalk's motion encoder (`flashtalker pretrain-motion-encoder`, task "motion_encoder"):
FLAME expression, neck/jaw, eyes, shape and the head-to-camera code from pixels in one
pass (flashtalker_jax/encoder/). Trained on tracked real clips and procedural identities.

Defaults are the GPU-sized run (128 px crops, batch 64). Presets:
  cpu       64 px crops, batch 16: the measured CPU runs
  temporal  the cpu sizes with windows of 8 frames and the temporal head (kernel 5)
  temporal_finetune  that head trained on a per-frame encoder (--config.task.init_encoder=RUN)
  quick     tiny sizes and a handful of steps: tests and smoke runs
"""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.name = "motion_encoder"
    t.dataset = ""                  # VHAP folders (identities or folders of them), comma-separated
    t.flame = ""                    # FLAME model ("" = the first identity's flame/ or ../flame/)
    t.n_shape = 100                 # shape components predicted (track fits 100)
    t.n_expr = 50                   # expression components predicted (track fits 50)
    t.resolution = 128              # crops resized to this square size (divisible by 2^len(widths))
    t.window = 1                    # consecutive frames per row (>1 trains the temporal head)
    t.batch_size = 64               # global batch of windows
    t.data_seed = 0
    t.train_splits = ("train",)     # frames trained on; test/val stay held out for eval
    t.eval_splits = ("test", "val")
    t.init_encoder = ""             # a trained encoder (RUN/encoder) to start from: its weights and
                                    # normalisation; new layers (a temporal head) start as built

    # One random similarity + colour change per window (targets moved to match), for crops
    # framed and lit unlike the clips trained on. Off: on 3 real people + 6 procedural ones
    # it did not lower the held-out errors (BENCHMARKS.md, motion encoder: 3000 steps worse
    # on real clips, 9000 steps level with the plain 3000-step run).
    t.augment = ml_collections.ConfigDict()
    t.augment.enabled = False
    t.augment.log_zoom = 0.1        # zoom in exp([-0.1, 0.1]) about the crop centre
    t.augment.shift = 0.05          # shift up to 5 % of the width each way
    t.augment.log_gain = 0.15       # per-channel gain in exp([-0.15, 0.15])
    t.augment.offset = 0.05         # brightness offset up to 5 % of full scale

    t.model = ml_collections.ConfigDict()
    t.model.widths = (32, 64, 128, 256)  # stride-2 conv channels (last map flattened)
    t.model.feature = 256           # x_D, the global driving feature
    t.model.hidden = 256            # sub-encoder MLP width
    t.model.temporal_kernel = 0     # 0: per-frame; k > 0: residual 1-D conv over k frames

    t.loss = ml_collections.ConfigDict()
    t.loss.code = 5.0               # GenFaceTalk's soft FLAME-code loss weight (its first 20k steps)
    t.loss.transform = 5.0          # GenFaceTalk's camera transform loss weight
    t.loss.vertices = 0.1           # per mm of mean vertex distance (ours: weights codes by effect)
    # GenFaceTalk's image losses (Eq. 15: L1 + 0.01 perceptual), each identity rendered from a
    # frozen e2v prior's Gaussians posed by the prediction (encoder/image_loss.py). Off (0).
    t.loss.image = 0.0              # L1 weight (the paper's 1)
    t.loss.image_ssim = 0.0         # (1 - SSIM) weight (not the paper's)
    t.loss.perceptual = 0.0         # LPIPS weight (the paper's 0.01); needs perceptual_weights
    t.loss.perceptual_net = "alex"  # "alex" or "vgg": the network perceptual_weights holds
    t.loss.perceptual_weights = ""  # LPIPS file: lin layers (+ backbone unless the next is set)
    t.loss.perceptual_backbone = "" # torchvision backbone file ("" = in perceptual_weights)
    t.image_prior = ""              # e2v prior (RUN of `pretrain-e2v`, this FLAME model): the Gaussians
    t.image_resolution = 64         # render size (px) of the image loss
    t.image_rows = 0                # frames of a batch rendered (0 = all; the first k of random rows)

    config = ml_collections.ConfigDict()
    config.task = t
    config.optim = common.optim("adam", 1e-3, warmup_steps=200, clip_norm=1.0)
    config.train = common.train(20000, log_every=100, checkpoint_every=1000)
    config.mesh = common.mesh()
    return common.with_preset(config, preset, {"cpu": _cpu, "temporal": _temporal,
                                                     "temporal_finetune": _temporal_finetune, "quick": _quick})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """64 px crops and a narrower backbone: ~0.1 s a step on 2 cores."""
    t = config.task
    t.resolution = 64
    t.batch_size = 16
    t.model.widths = (16, 32, 64, 128)
    config.optim.warmup_steps = 50
    config.train.update(steps=3000, log_every=100, checkpoint_every=500)


def _temporal(config: ml_collections.ConfigDict) -> None:
    """The cpu run with 8-frame windows (batch 4 windows = 32 frames) and the temporal head."""
    _cpu(config)
    config.task.window = 8
    config.task.batch_size = 4
    config.task.model.temporal_kernel = 5


def _temporal_finetune(config: ml_collections.ConfigDict) -> None:
    """The temporal head trained on top of a per-frame encoder (set task.init_encoder): the
    temporal preset's windows, 1000 steps at a tenth of the learning rate."""
    _temporal(config)
    config.optim.lr = 1e-4
    config.optim.warmup_steps = 20
    config.train.update(steps=1000, log_every=100, checkpoint_every=500)


def _quick(config: ml_collections.ConfigDict) -> None:
    """32 px crops, small widths, 20 steps: tests and smoke runs."""
    _cpu(config)
    t = config.task
    t.resolution = 32
    t.batch_size = 4
    t.model.widths = (8, 16, 32)
    t.model.feature = 64
    t.model.hidden = 64
    config.optim.warmup_steps = 2
    config.train.update(steps=20, log_every=5, checkpoint_every=10)
