"""One process of the checkpoint-agreement test (test_checkpoint_agreement.py).

argv: OUT ADDR N I. Process I of N (jax.distributed, coordinator ADDR, one CPU device
each) saves steps 1 and 2 of a tiny replicated state into OUT/checkpoints, then restores
twice while Orbax's state reader fails for step 2 in process 1 only:
  error:   process 1 raises MemoryError (not corruption): every process must stop, nothing moved;
  corrupt: process 1 raises FileNotFoundError (corruption): every process must fall back
           to step 1 together and step 2 is quarantined once.
Writes OUT/result_<I>.json: {scenario: {"step", "w"} or {"error", "message"}}.
"""
from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flashtalker_jax.train.checkpoint import Checkpointer

FAILURES = {"error": lambda: MemoryError("simulated out of memory in process 1"),
            "corrupt": lambda: FileNotFoundError(errno.ENOENT, "simulated missing file in process 1")}


class Counter:
    """A data iterator whose state is one number."""

    def __init__(self):
        self.position = 0

    def get_state(self) -> dict:
        return {"position": self.position}

    def set_state(self, state: dict) -> None:
        self.position = state["position"]


def replicated(value: float, sharding) -> jax.Array:
    return jax.make_array_from_callback((4,), sharding, lambda index: np.full((4,), value, np.float32)[index])


def restore(directory: Path, sharding, scenario: str) -> dict:
    """restore_latest while Orbax's state reader fails for step 2 in process 1 only."""
    checkpointer = Checkpointer(directory, async_save=False)
    original = ocp.StandardCheckpointHandler.restore

    def failing_in_process_1(self, folder, *args, **kwargs):
        if jax.process_index() == 1 and Path(folder).parent.name == "2":
            raise FAILURES[scenario]()
        return original(self, folder, *args, **kwargs)

    ocp.StandardCheckpointHandler.restore = failing_in_process_1
    target = {"w": jax.ShapeDtypeStruct((4,), jnp.float32, sharding=sharding)}
    try:
        restored = checkpointer.restore_latest(target, Counter())
    except Exception as exc:  # noqa: BLE001 - the outcome under test
        return {"error": type(exc).__name__, "message": str(exc)}
    finally:
        ocp.StandardCheckpointHandler.restore = original
        checkpointer.close()
    state, step = restored
    return {"step": step, "w": np.asarray(state["w"].addressable_data(0)).tolist()}


def main(out: Path, coordinator: str, count: int, index: int) -> None:
    jax.distributed.initialize(coordinator, num_processes=count, process_id=index)
    sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec())
    checkpointer = Checkpointer(out / "checkpoints", async_save=False)
    for step in (1, 2):
        checkpointer.save(step, {"w": replicated(float(step), sharding)}, Counter(), {"step": step})
    checkpointer.close()
    results = {scenario: restore(out / "checkpoints", sharding, scenario) for scenario in ("error", "corrupt")}
    (out / f"result_{index}.json").write_text(json.dumps(results))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
