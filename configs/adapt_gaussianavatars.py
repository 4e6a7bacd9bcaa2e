"""GaussianAvatars-style placement for comparison with FlashTalker's UV sampling: one
Gaussian per FLAME triangle (plus teeth), everything else as configs/adapt_flashtalker.py.
Binding-aware densification is not implemented yet, so the count stays one per face."""
from flashtalker_jax.config import load_config


def get_config():
    config = load_config("adapt_flashtalker")
    config.task.placement.mode = "per_face"
    config.task.avatar.init_scale_factor = 0.5
    return config
