"""Multi-process set-up: `jax.distributed.initialize`, process roles, global batches.

Three ways to start (see launch/README.md):
- explicit coordinator (local runs, Kubernetes): `initialize("host:port", n, i)`;
- cluster auto-detection (SLURM with several tasks, Cloud TPU VM pods, or `auto=True`):
  `jax.distributed.initialize()` reads the cluster's environment;
- a single process: nothing to initialise.
Every process runs the same program; only process 0 writes logs, reports and bars.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from flashtalker_jax.errors import ConfigError


def cluster_detected() -> bool:
    """True when the environment describes a multi-process job JAX can auto-detect."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> bool:
    """Start jax.distributed if this is a multi-process job; returns whether it did."""
    if coordinator is not None:
        if num_processes is None or process_id is None:
            raise ConfigError("--coordinator needs --num-processes and --process-id")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id {process_id} is not in [0, {num_processes})")
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
        return True
    if auto or cluster_detected():
        jax.distributed.initialize()
        return True
    return False


def is_main_process() -> bool:
    return jax.process_index() == 0


def global_batch(local_batch: Any, sharding: jax.sharding.Sharding) -> Any:
    """Assemble per-process batches (each process's rows) into global arrays.

    Every process passes its own (B_local, ...) rows; the result has B_local *
    process_count rows split over the "data" axis of `sharding`.
    """
    count = jax.process_count()
    rows = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(local_batch)}
    data_size = sharding.mesh.shape["data"]
    if len(rows) != 1 or None in rows or (rows.pop() * count) % data_size:
        shapes = jax.tree.map(np.shape, local_batch)
        raise ConfigError(f"batch leaves {shapes} must share a leading (example) axis whose global size "
                          f"({count} process(es) x local rows) divides by the mesh's data axis ({data_size})")

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, (x.shape[0] * count, *x.shape[1:]))

    return jax.tree.map(one, local_batch)
