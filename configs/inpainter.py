"""GGTalker's body inpainter, trained per identity on its own frames (trainer task
"body_inpainter", flashtalker_jax/composite/train_inpainter.py).

Defaults are the GPU-sized run on 512x512 face crops. Presets: `cpu` (a CPU-sized run in
minutes), `quick` (tests and CI: a tiny net on tiny frames, seconds).
"""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    t = config.task = ml_collections.ConfigDict()
    t.name = "body_inpainter"
    t.data = ""                # .npz of head_rgb, head_alpha, frame, head_mask (train_inpainter.py)
    t.base_channels = 16       # widths 16/32/64/128: GGTalker's inpainter is "lightweight";
                               # the fill is low-frequency torso/background next to the head
    t.depth = 3                # three halvings: ~70 px receptive field at full resolution,
                               # enough to see past a 2 x 24 px seam into the real context
    t.norm_groups = 0          # no GroupNorm: its statistics pool over the image, which differ
                               # between training patches and full inference frames
    t.activation = "silu"
    t.patch = 128              # > 2 x (max dilation + receptive field / 2): head, seam and
                               # context all fit in a patch; multiple of 2^depth
    t.batch_size = 16          # global batch of patches
    t.dilation = (4, 24)       # per-patch dilation radius range (px): seams of any width the
                               # compositor may ask for, from a tight to a loose head mask
    t.seam_band = 24           # patch centres lie within this many px of the head outline
                               # (= max dilation, so every radius's seam is covered)
    t.data_seed = 0
    t.loss = ml_collections.ConfigDict()
    t.loss.seam_l1 = 1.0       # L1 over the removed region: the only pixels the net paints
    t.loss.ssim = 0.2          # 1 - SSIM of the patch: keeps structure (stripes, collar edges)
                               # that L1 alone blurs; 0.2 as the avatar's photometric loss
    config.optim = common.optim("adam", 1e-3)  # Adam 1e-3: the usual U-Net rate; cosine decay
    config.train = common.train(2000, log_every=50, checkpoint_every=500)  # a few minutes on a GPU;
    # the fill of one identity's torso converges long before the avatar's adaptation does
    config.mesh = common.mesh()
    return common.with_preset(config, preset, {"cpu": _cpu, "quick": _quick})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """CPU-sized: a narrower net on smaller patches, 500 steps (minutes on a few cores)."""
    config.task.update(base_channels=12, patch=96, batch_size=8)  # 96 = 2 x (24 + 24): still
    # holds a maximal seam and its context
    config.train.update(steps=500, log_every=25, checkpoint_every=250)


def _quick(config: ml_collections.ConfigDict) -> None:
    """Tests and CI: 64 px synthetic frames, a two-level net of width 8, 20 steps, seconds."""
    config.task.update(base_channels=8, depth=2, patch=32, batch_size=4,  # 32 px = 4 x 8: fits 64 px frames
                       dilation=(2, 6), seam_band=6)   # seams scaled to the 64 px frames
    config.optim.lr = 3e-3      # few steps: a larger rate shows learning within 20 steps
    config.train.update(steps=20, log_every=5, checkpoint_every=10, keep_checkpoints=1)
    config.train.async_checkpoint = False   # tests read the run folder right after fit returns
