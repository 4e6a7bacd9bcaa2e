"""CPU-sized FlashTalker adaptation: 256x256 frames, a 96^2 UV grid (a few thousand
Gaussians), the default rasterize backend, a few thousand steps."""
from flashtalker_jax.config import load_config


def get_config():
    config = load_config("adapt_flashtalker")
    config.task.resolution = 256
    config.task.placement.uv_resolution = 96
    config.task.avatar.feature_dim = 16
    config.task.avatar.heads = 2
    config.task.avatar.offset_hidden = 32
    config.task.avatar.color_hidden = 16
    # "auto" = pallas (interpret mode on CPU): its compositor fwd+bwd took 0.31 s per
    # 128x128 avatar frame vs 3.6 s for "tiles" (BENCHMARKS.md, Rasterizer).
    config.task.render.backend = "auto"
    config.task.refine_start = 1500
    config.train.steps = 3000
    config.train.log_every = 50
    config.train.checkpoint_every = 500
    config.optim.warmup_steps = 50
    return config
