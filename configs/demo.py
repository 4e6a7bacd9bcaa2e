"""`flashtalker demo`: every stage's config, nested (CPU-sized, 256x256 since 2026-12-07:
3 min 35 s wall for the demo at load ~7 on 2 shared cores, held-out PSNR 33.66 dB;
BENCHMARKS.md "Demo"). 600 avatar steps, not 800: 800 took 16 min at load ~9.5 when the
rasterizer was Pallas interpret mode.

Each stage's block is the full config of its own file (loaded and resized here), so
overrides reach every field: `--config.speak.text="..."`, `--config.seed=1`,
`--config.adapt.train.steps=300`. Speech is driven by the motion prior bundled with the
package (configs/motion_prior.py; the demo trains none), which exists for procedural head
seed 0: another `seed` makes another head, which it refuses.
`demo.py:quick` is the CI size (`flashtalker demo --quick`)."""
import ml_collections

from flashtalker_jax.config import load_config
from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.fps = 25.0
    # The procedural identity (flashtalker data synth): seconds of speech, and its synthesis
    # config at the demo's frame size.
    c.data = ml_collections.ConfigDict(dict(seconds=24.0))
    c.data.synth = load_config("data_synth")
    c.data.synth.render.update(width=256, height=256, texture_size=512)
    # Avatar adaptation (flashtalker adapt).
    c.adapt = load_config("adapt_flashtalker.py:cpu")
    c.adapt.task.update(resolution=256, refine_start=-1)
    c.adapt.task.placement.uv_resolution = 64
    c.adapt.train.update(steps=600, checkpoint_every=300, log_every=50)
    # The spoken sentence: an espeak-ng voice variant the identity was not trained on
    # (the first of `voices` that differs from the identity's).
    c.speak = ml_collections.ConfigDict(dict(
        text="The quick brown fox jumps over the lazy dog, and then it runs away.",
        voices=("f3", "m3", "klatt2"), rate=150, pitch=60, batch=8))
    c.sheet_frames = 8   # frames in the PNG contact sheet
    # MediaPipe face_landmarker.task for the rendered mouth opening of report.json
    # ("": not measured; the demo downloads nothing), e.g. ../shared/data/models/face_landmarker.task
    c.face_landmarker = ""
    return common.with_preset(c, preset, {"quick": _quick})


def _quick(c: ml_collections.ConfigDict) -> None:
    """CI size (tiny frames, few steps): checks that every stage runs end to end, not quality."""
    c.data.seconds = 3.0
    c.data.synth.render.update(width=32, height=32, texture_size=128, workers=1)
    c.adapt = load_config("adapt_flashtalker")
    c.adapt.task.update(resolution=32, refine_start=-1)
    c.adapt.task.placement.update(uv_resolution=16, teeth_per_face=1)
    c.adapt.task.render.backend = "reference"
    c.adapt.train.update(steps=2, checkpoint_every=2, log_every=1, async_checkpoint=False)
    c.speak.update(text="Hello there.", batch=4)
    c.sheet_frames = 4
