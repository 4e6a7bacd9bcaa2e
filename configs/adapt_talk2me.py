"""Talk2Me's avatar (Sec. 4.2): region-weighted Gaussian deformation with the learnable
positional encoding and eye-aspect-ratio features (avatar/deform_talk2me.py), in place of
FlashTalker's cross-region attention; everything else (UV placement, losses, schedule,
render settings) is configs/adapt_flashtalker.py's, so a comparison isolates the deformer.
Not implemented: Talk2Me's adversarial loss (Eq. 10's L_a); its perceptual term is
adapt_flashtalker's optional task.loss.perceptual (off by default: it needs LPIPS weights).

Presets, combinable with "+" (`adapt_talk2me.py:cpu+no_lpe`; not ",", which separates
config names in lists such as `bench avatar --configs`): `cpu` (the sizes and
schedule of adapt_flashtalker.py:cpu) and the ablations `no_lpe` (the NeRF encoding of the
neutral position instead of the learnable positional encoding), `no_region_weights` (both
branches with weight 1 everywhere) and `no_ear` (no eye-aspect ratios in the drive).
"""
import ml_collections

from flashtalker_jax.configs import adapt_flashtalker
from flashtalker_jax.errors import ConfigError

ABLATIONS = {"no_lpe": "lpe", "no_region_weights": "region_weights", "no_ear": "ear"}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    names = preset.split("+") if preset else []
    unknown = sorted(set(names) - {"cpu", *ABLATIONS})
    if unknown:
        raise ConfigError(f"unknown preset {'+'.join(unknown)!r}: use any of "
                          f"{['cpu', *ABLATIONS]} joined by '+'")
    config = adapt_flashtalker.get_config("cpu" if "cpu" in names else None)
    a = config.task.avatar
    a.deformer = "region_weighted"
    a.use_audio = False    # phi_D is driven by FLAME expression, pose and EAR only
    a.color_mlp = False    # colour offsets are phi_D's c'; the colour MLP is the other deformer's
    for name in names:
        if name in ABLATIONS:
            a.talk2me[ABLATIONS[name]] = False
    config.preset = preset or ""
    return config
