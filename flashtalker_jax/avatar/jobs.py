"""The avatar job behind `flashtalker adapt` (and the demo's avatar stage): train an
identity's Gaussian avatar with the generic trainer, then export the self-contained
avatar folder RUN/avatar."""
from __future__ import annotations

import os
import time
from pathlib import Path

import ml_collections

from flashtalker_jax.avatar.adapt import export_avatar, make_task
from flashtalker_jax.e2v.init import pin_prior
from flashtalker_jax.train.state import merge_model
from flashtalker_jax.train.trainer import fit


def adapt(config: ml_collections.ConfigDict, out: str | os.PathLike, resume: bool = False,
          restart: bool = False) -> dict:
    """Train config.task (task.data = the identity's VHAP folder) in run folder `out`;
    task.prior.path set: prior-initialised (e2v/init.py).

    Returns status ("completed" or "preempted"), steps, seconds and avatar (the exported
    folder; None when preempted, since a partial run is resumed rather than exported).
    """
    out = Path(out)
    start = time.perf_counter()
    # The run records the prior it adapts from (path + sha256, saved in RUN/config.json)
    # and a resumed run uses that one again (e2v/init.pin_prior).
    config = config.copy_and_resolve_references()
    config.task.prior.update(pin_prior(config.task.prior, out, resume))
    task = make_task(config.task)
    result = fit(task, config, out, resume=resume, restart=restart)
    avatar = None
    if result.status != "preempted":
        avatar = export_avatar(merge_model(result.graphdef, result.state), config.task, out / "avatar")
    return {"status": result.status, "steps": result.step, "seconds": time.perf_counter() - start,
            "avatar": avatar}
