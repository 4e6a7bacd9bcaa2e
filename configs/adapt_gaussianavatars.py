"""GaussianAvatars-style placement for comparison with FlashTalker's UV sampling: one
Gaussian per FLAME triangle (plus teeth), grown and pruned by binding-aware
densification (avatar/densify.py) within a static capacity; everything else as
configs/adapt_flashtalker.py."""
from flashtalker_jax.config import load_config


def get_config():
    config = load_config("adapt_flashtalker")
    config.task.placement.mode = "per_face"
    config.task.avatar.init_scale_factor = 0.5
    config.task.avatar.capacity = 40000  # Gaussians created over the run, initial ones included
    config.task.densify.enabled = True
    return config
