"""`flashtalker demo`: sizes of every stage of the built-in demo (CPU-sized: 8 min 9 s
wall, 341 CPU seconds on 2 shared cores at load 7-8, held-out PSNR 33.8 dB at 128x128;
BENCHMARKS.md "Demo"). 600 avatar steps, not 800: 800 took 16 min at load ~9.5.

Overrides: `--config.speak.text="..."`, `--config.seed=1` etc. configs/demo_quick.py is the
CI-sized variant (`flashtalker demo --quick`)."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.fps = 25.0
    # The procedural identity (flashtalker data synth): frame size and seconds of speech.
    c.data = ml_collections.ConfigDict(dict(
        seconds=24.0, overrides=("render.width=128", "render.height=128", "render.texture_size=512")))
    # Avatar adaptation (flashtalker adapt): config file plus overrides.
    c.adapt = ml_collections.ConfigDict(dict(
        config="adapt_cpu",
        overrides=("task.resolution=128", "task.placement.uv_resolution=64", "train.steps=600",
                   "train.checkpoint_every=300", "train.log_every=50", "task.refine_start=-1")))
    # Audio-to-expression model (synth-a2e-data + pretrain-a2e).
    c.a2e = ml_collections.ConfigDict(dict(
        config="audio2param", identities=6, seconds=30.0, synth_overrides=(),
        overrides=("preset=tiny", "train.steps=300", "train.checkpoint_every=300", "train.log_every=50")))
    # The spoken sentence: an espeak-ng voice variant the identity was not trained on
    # (the first of `voices` that differs from the identity's).
    c.speak = ml_collections.ConfigDict(dict(
        text="The quick brown fox jumps over the lazy dog, and then it runs away.",
        voices=("f3", "m3", "klatt2"), rate=150, pitch=60, batch=8))
    c.sheet_frames = 8   # frames in the PNG contact sheet
    return c
