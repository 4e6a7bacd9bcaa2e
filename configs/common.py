"""Blocks that config files compose from (big_vision's configs/common.py pattern).

Each helper returns a fresh ConfigDict; a config file passes the numbers it owns and
keeps the shared defaults named here. Presets are functions of the file that defines
them, selected by `--config file.py:name` (flashtalker_jax/config.py load_config passes
`name` to `get_config(preset)`, which calls `with_preset`).
"""
from __future__ import annotations

from typing import Callable, Mapping

import ml_collections

from flashtalker_jax.errors import ConfigError


def optim(name: str, lr: float, *, schedule: str = "warmup_cosine", warmup_steps: int = 0,
          end_lr_fraction: float = 0.05, b1: float = 0.9, b2: float = 0.999, weight_decay: float = 0.0,
          clip_norm: float = 0.0) -> ml_collections.ConfigDict:
    """train/optim.make_optimizer's block. decay_steps=0: the schedule decays over train.steps."""
    return ml_collections.ConfigDict(dict(
        name=name, lr=lr, schedule=schedule, warmup_steps=warmup_steps, decay_steps=0,
        end_lr_fraction=end_lr_fraction, b1=b1, b2=b2, weight_decay=weight_decay, momentum=0.0,
        clip_norm=clip_norm,
    ))


def train(steps: int, *, seed: int = 0, log_every: int = 50, checkpoint_every: int = 1000,
          keep_checkpoints: int = 2, max_nonfinite: int = 10) -> ml_collections.ConfigDict:
    """train/trainer.fit's loop block."""
    return ml_collections.ConfigDict(dict(
        steps=steps,
        seed=seed,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        async_checkpoint=True,
        max_nonfinite=max_nonfinite,  # stop after this many non-finite steps in a row
        init_from="",                 # checkpoints/ folder of another run to take params from
        init_from_prefix="params",    # leaf-path prefix in that checkpoint
        init_into="",                 # leaf-path prefix in this model's params ("" = all)
    ))


def mesh() -> ml_collections.ConfigDict:
    """Device mesh: every device on the data axis (-1), no model parallelism."""
    return ml_collections.ConfigDict(dict(data=-1, model=1))


def motion_task(name: str, batch_size: int) -> ml_collections.ConfigDict:
    """Data fields and audio augmentation shared by the motion models (pretrain_a2e, audio2param)."""
    task = ml_collections.ConfigDict(dict(
        name=name,
        dataset="",             # folder of identity folders (VHAP layout); set by --data
        max_identities=-1,      # use the first N identities (-1: all)
        n_expr=8,               # expression coefficients predicted (8 drive the procedural head;
                                # 100 for tracked real FLAME)
        features="log_mel",     # or "wav2vec2" (then wav2vec2_dir = a local checkpoint folder)
        wav2vec2_dir="",
        feature_cache="",       # folder for cached features ("" = recompute)
        flame_dir="",           # FLAME folder ("" = <dataset>/flame)
        batch_size=batch_size,  # global batch of windows
        min_frames=25,          # a training window keeps at least this many real frames
        data_seed=0,
        # Built datasets (`flashtalker data build-tfds`, read by motion/records.py):
        norm_windows=256,       # train windows sampled for the normalisation statistics
        window_stride=1,        # every k-th window start of a run
        data_workers=0,         # grain worker processes (0: read in the training process)
        freeze=(),              # parameter path prefixes with no gradient (adaptation)
    ))
    # Recording conditions the clean espeak speech lacks (flashtalker_jax/audio/augment.py):
    # random gain and a white/pink/brown noise floor snr_db under the speech, per window.
    task.augment = ml_collections.ConfigDict(dict(
        prob=0.8, gain_db=(-12.0, 12.0), snr_db=(10.0, 50.0), noise_kinds=("white", "pink", "brown")))
    return task


def with_preset(config: ml_collections.ConfigDict, preset: str | None,
                presets: Mapping[str, Callable[[ml_collections.ConfigDict], None]]) -> ml_collections.ConfigDict:
    """Apply presets[preset] (a function editing `config` in place) and record the name in
    config.preset ("" = the file's defaults). The config is locked meanwhile, so a preset
    that names a field the file lacks fails instead of adding it."""
    if preset and preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}: use one of {sorted(presets)}")
    config.preset = preset or ""
    if preset:
        config.lock()
        presets[preset](config)
        config.unlock()
    return config
