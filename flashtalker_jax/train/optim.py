"""Optimisers and learning-rate schedules built from `config.optim`.

Fields: name (adamw | adam | sgd), lr, schedule (constant | cosine | warmup_cosine),
warmup_steps, decay_steps (0 = train.steps), end_lr_fraction, b1, b2, weight_decay,
momentum (sgd), clip_norm (<= 0 disables global-norm clipping).
"""
from __future__ import annotations

import ml_collections
import optax

from flashtalker_jax.errors import ConfigError


def make_schedule(optim: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    decay = optim.decay_steps or total_steps
    end = optim.lr * optim.end_lr_fraction
    if optim.schedule == "constant":
        return optax.constant_schedule(optim.lr)
    if optim.schedule == "cosine":
        return optax.cosine_decay_schedule(optim.lr, decay, alpha=optim.end_lr_fraction)
    if optim.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, optim.lr, optim.warmup_steps,
                                                  max(decay, optim.warmup_steps + 1), end)
    raise ConfigError(f"optim.schedule={optim.schedule!r}: use constant, cosine or warmup_cosine")


def make_optimizer(optim: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(transformation, schedule); clipping runs before the optimiser's own update."""
    schedule = make_schedule(optim, total_steps)
    if optim.name == "adamw":
        base = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
    elif optim.name == "adam":
        base = optax.adam(schedule, b1=optim.b1, b2=optim.b2)
    elif optim.name == "sgd":
        base = optax.sgd(schedule, momentum=optim.momentum or None)
    else:
        raise ConfigError(f"optim.name={optim.name!r}: use adamw, adam or sgd")
    if optim.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(optim.clip_norm), base), schedule
    return base, schedule
