"""FlashTalker adaptation on real footage: a VHAP folder written by `flashtalker track`.

The head model draws the head, hair and neck only (the head_masks/ of `track`, the person
above the tracked neck seam); the torso and background stay the frame's. So the head is
rendered on black with its coverage alpha, put over the training frame itself
(`render_over_frame`) and compared with the frame, and w_alpha |alpha - head mask| makes
the coverage match the head (over the frame the photometric term cannot tell a missing head
from the frame showing through). The body inpainter (configs/inpainter.py) then joins the
head to the torso at speak time. Frames are the source crop size, 512x512.

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
    t.render_over_frame = True       # torso and background from the frame, not a flat colour
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
