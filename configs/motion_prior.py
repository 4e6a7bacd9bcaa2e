"""The bundled motion prior (flashtalker_jax/bundled/motion_prior, pipeline/bundled.py):
what launch/train_motion_prior.py synthesises and trains, from fixed seeds.

An Audio2Param run (configs/audio2param.py, preset `bundled`) on motion-only procedural
speaking identities of the procedural head `flame_seed` (as `flashtalker synth-a2e-data`).
The voice variants that `flashtalker eval-mouth` and the demo's sentence use (f3, m3,
klatt2) are left out of the training voices, so every check of it is on an unheard voice.
Presets: `bundled` (none: the shipped model), `tiny` (seconds: the reproducibility test)."""
import ml_collections

from flashtalker_jax.config import load_config
from flashtalker_jax.configs import common

HELD_OUT_VOICES = ("f3", "m3", "klatt2")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0            # data synthesis (voices, sentences, motion); training seeds are in pretrain
    c.flame_seed = 0      # the procedural head (flame/procedural, what `flashtalker demo` uses)
    c.data = ml_collections.ConfigDict(dict(identities=24, seconds=40.0))
    c.data.synth = load_config("data_synth")
    c.data.synth.speech.variants = tuple(v for v in c.data.synth.speech.variants if v not in HELD_OUT_VOICES)
    c.pretrain = load_config("audio2param.py:bundled")
    return common.with_preset(c, preset, {"tiny": _tiny})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.data.update(identities=2, seconds=6.0)
    c.data.synth.split.val_sentences = 1
    c.pretrain = load_config("audio2param.py:tiny")
    c.pretrain.task.model.update(d_model=16, window=12)
    c.pretrain.task.update(min_frames=6, batch_size=2)
    c.pretrain.train.update(steps=3, checkpoint_every=3, log_every=1, async_checkpoint=False)
