"""`flashtalker pretrain-motion-encoder`: the trainer on task "motion_encoder", then the
encoder folder RUN/encoder (encoder/folder.py) from the final state."""
from __future__ import annotations

import time
from pathlib import Path


def pretrain(config, out, *, resume: bool = False, restart: bool = False) -> dict:
    """Train (resumable: the trainer's Orbax checkpoints) and write RUN/encoder; returns a
    summary {status, steps, seconds, encoder}. status "preempted": nothing exported."""
    from flashtalker_jax.encoder.folder import write_encoder
    from flashtalker_jax.encoder.task import dataset_folders, make_task, resolve_flame_file
    from flashtalker_jax.train.state import merge_model
    from flashtalker_jax.train.trainer import fit

    start = time.perf_counter()
    flame_file = resolve_flame_file(config.task.flame, dataset_folders(config.task.dataset))
    result = fit(make_task(config.task), config, out, resume=resume, restart=restart)
    summary = {"status": result.status, "steps": int(result.step), "seconds": round(time.perf_counter() - start, 1)}
    if result.status == "preempted":
        return summary
    folder = write_encoder(Path(out) / "encoder", merge_model(result.graphdef, result.state), config.task,
                           result.step, flame_file)
    return {**summary, "encoder": str(folder)}
