"""FlashTalker adaptation on real footage: a VHAP folder written by `flashtalker track`.

The head model draws the head, hair and neck only (the head_masks/ of `track`, the person
above the tracked neck seam); the torso and background stay the frame's. So the head is
rendered on black with its coverage alpha (`render_over_frame`: the render is the head
alone) and, in training, put over a random colour per frame and compared with the masked
frame over the same colour, so every coverage error costs; w_alpha |alpha - head mask|
adds a direct pull on the coverage. The body inpainter (configs/adapt_body.py) joins the
head to the recorded torso at speak and eval time. Frames are the source crop size,
512x512.

Presets: `cpu` (the CPU-sized run: the adapt_flashtalker.py:cpu model at 512x512) and
`quick` (tests and the CI-sized demo).
"""
import ml_collections

from flashtalker_jax.configs import adapt_flashtalker, common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = adapt_flashtalker.get_config()
    t = config.task
    t.resolution = 512               # the source crop size of talking-head papers (track writes it)
    t.mask_source = "head"           # head_masks/: the torso is not the head model's to draw
    t.render_over_frame = True       # the render is the head alone (torso/background: the frame's)
    # Trained over a random colour per frame: over the frame itself (train_background="frame")
    # the head stayed see-through at the eyes and lips, where the frame behind it is right
    # (news_anchor_71s, 2000 steps: blue eyes once composited; BENCHMARKS.md "Real person").
    t.train_background = "random"
    t.background = (0.0, 0.0, 0.0)   # the render is the head alone (premultiplied by alpha)
    t.loss.alpha = 0.1               # ~ the L1 of a fully missed head pixel (colour error ~0.2-0.5)
    # Real hair and shoulders-length necks reach beyond the template: more room to move.
    t.loss.position_threshold = 1.5
    # A Gaussian covers 4x the 16x16 tiles at 512 that it covers at 256 (where 8 suffices); the
    # may_5s run at init needed 9.3 per Gaussian at 512, so 24 leaves room to grow.
    t.render.intersections_per_gaussian = 24
    return common.with_preset(config, preset, {"cpu": _cpu, "quick": _quick})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """The CPU-sized model (adapt_flashtalker.py:cpu) at 512x512: 96^2 UV grid, small MLPs."""
    adapt_flashtalker._cpu(config)
    config.task.resolution = 512
    config.train.update(steps=2000, log_every=50, checkpoint_every=250)
    config.task.refine_start = 1000


def _quick(config: ml_collections.ConfigDict) -> None:
    """Tests and the CI-sized demo: 64^2 UV grid, a few hundred steps."""
    _cpu(config)
    config.task.placement.uv_resolution = 64
    config.task.refine_start = -1
    config.train.update(steps=300, log_every=25, checkpoint_every=100)
