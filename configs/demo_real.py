"""`flashtalker demo --video CLIP`: the real-person chain on a user's clip, every stage's
config nested (CPU-sized): track (configs/track.py), adapt (configs/adapt_real.py:quick, the
head over the frame at 512x512), adapt-body (configs/adapt_body.py:cpu: the body inpainter and
the body loop), speak (a sentence, or --audio), eval (self-reenactment on the held-out
frames: whole frame, head box, neck ring).

Overrides reach every field: `--config.adapt.train.steps=600`, `--config.speak.text="..."`.
`demo_real.py:quick` is the test size (tiny step counts: checks the chain, not quality).
"""
import ml_collections

from flashtalker_jax.config import load_config
from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.fps = 25.0
    c.track = load_config("track")
    c.adapt = load_config("adapt_real.py:quick")
    c.adapt.train.update(steps=400, checkpoint_every=200)
    c.body = load_config("adapt_body.py:cpu")
    c.body.train.update(steps=400, checkpoint_every=200)
    # The spoken sentence (espeak-ng; the bundled motion prior drives the procedural head the
    # tracker fits), unless --audio gives a file.
    c.speak = ml_collections.ConfigDict(dict(
        text="The quick brown fox jumps over the lazy dog, and then it runs away.",
        voice="m3", rate=150, pitch=50, batch=4))
    c.eval_frames = 0        # held-out frames scored (0: the whole test split)
    c.grid_frames = 4        # columns of the ground truth | ours | error still
    return common.with_preset(c, preset, {"quick": _quick})


def _quick(c: ml_collections.ConfigDict) -> None:
    """Test size: a few steps of each training; the chain runs end to end."""
    c.track.video.crop_size = 256
    c.track.fit.update(rigid_steps=30, face_steps=60)
    c.adapt.task.resolution = 256
    c.adapt.train.update(steps=4, checkpoint_every=4, log_every=2, async_checkpoint=False)
    c.body.train.update(steps=4, checkpoint_every=4, log_every=2, async_checkpoint=False)
    c.body.body.update(train_frames=8, eval_frames=4, loop_frames=12)
    c.speak.update(text="Hello there.")
    c.eval_frames = 4
