"""Runs the toy task in a separate process for the trainer tests (importable helpers too).

Modes (argv[1]):
  devices8 OUT              8 simulated devices (XLA_FLAGS set by the caller): trains on
                            meshes (8, 1) and (4, 2), writes OUT/<mesh>/params.npz and checkpoints.
  multiproc OUT ADDR N I    process I of N (jax.distributed, coordinator ADDR) trains once,
                            writes OUT/params_<I>.npz; the checkpoint is OUT/run/checkpoints.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# Tiny sizes: these runs exist to compare parameters, not to learn anything.
SMALL_OVERRIDES = [
    "--config.task.num_examples=256", "--config.task.hidden=(16, 16)", "--config.task.batch_size=16",
    "--config.train.steps=12", "--config.train.log_every=4", "--config.train.checkpoint_every=4",
    "--config.optim.warmup_steps=2",
]


def small_config(*extra: str):
    from flashtalker_jax.config import load_config

    return load_config("train_toy", [*SMALL_OVERRIDES, *extra])


def run(run_dir: Path, config, mesh=None, **kwargs):
    from flashtalker_jax.train.tasks import get_task
    from flashtalker_jax.train.trainer import fit

    return fit(get_task(config.task), config, run_dir, mesh=mesh, **kwargs)


def save_params(path: Path, result) -> None:
    from flashtalker_jax.train.state import params_as_numpy

    np.savez(path, **params_as_numpy(result.state))


def devices8(out: Path) -> None:
    import jax

    from flashtalker_jax.train.mesh import make_mesh

    assert jax.device_count() == 8, jax.devices()
    for data, model in ((8, 1), (4, 2)):
        run_dir = out / f"mesh{data}x{model}"
        result = run(run_dir, small_config(), mesh=make_mesh(data, model))
        save_params(run_dir / "params.npz", result)


def multiproc(out: Path, coordinator: str, count: int, index: int) -> None:
    import jax

    from flashtalker_jax.train import distributed

    distributed.initialize(coordinator, count, index)
    assert jax.process_count() == count
    result = run(out / "run", small_config())
    save_params(out / f"params_{index}.npz", result)
    jax.distributed.shutdown()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "devices8":
        devices8(out)
    elif mode == "multiproc":
        multiproc(out, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
