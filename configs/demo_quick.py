"""`flashtalker demo --quick`: the demo at CI size (tiny frames, few steps); checks that every
stage runs end to end, not quality."""
from flashtalker_jax.config import load_config


def get_config():
    c = load_config("demo")
    c.data.seconds = 3.0
    c.data.overrides = ("render.width=32", "render.height=32", "render.texture_size=128", "render.workers=1")
    c.adapt.config = "adapt_flashtalker"
    c.adapt.overrides = ("task.resolution=32", "task.placement.uv_resolution=16", "task.placement.teeth_per_face=1",
                         "task.render.backend=reference", "train.steps=2", "train.checkpoint_every=2",
                         "train.log_every=1", "task.refine_start=-1", "train.async_checkpoint=False")
    c.a2e.identities = 2
    c.a2e.seconds = 4.0
    c.a2e.synth_overrides = ("split.val_sentences=1",)
    c.a2e.overrides = ("preset=tiny", "task.model.d_model=16", "task.model.window=12", "task.min_frames=6",
                       "task.batch_size=2", "train.steps=2", "train.checkpoint_every=2", "train.log_every=1")
    c.speak.text = "Hello there."
    c.speak.batch = 4
    c.sheet_frames = 4
    return c
