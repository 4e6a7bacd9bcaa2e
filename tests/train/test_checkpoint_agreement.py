"""Two processes restoring one checkpoint folder take the same branch when only one of
them cannot read the newest step (train/checkpoint.py Checkpointer._attempt): corruption
seen by one process sends both back to the previous step (quarantined once, by process
0); any other error in one stops both (the other names the failing process) and moves
nothing. Without the agreement, the processes would restore different steps or wait
forever in each other's collectives. Subprocesses, because jax.distributed must start
before JAX does (see checkpoint_agreement_worker.py)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import portpicker
import pytest

from flashtalker_jax.utils.child import child_env
from processes import run_together

WORKER = Path(__file__).with_name("checkpoint_agreement_worker.py")


def run_processes(out: Path, count: int = 2, seconds: float = 60) -> list[dict]:
    env = child_env({k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"})
    address = f"localhost:{portpicker.pick_unused_port()}"
    run_together([[sys.executable, str(WORKER), str(out), address, str(count), str(i)] for i in range(count)],
                 env, seconds)
    return [json.loads((out / f"result_{i}.json").read_text()) for i in range(count)]


@pytest.mark.multiprocess
def test_processes_agree_on_the_step_when_one_cannot_read_it(tmp_path):
    first, second = run_processes(tmp_path)
    # Process 1 hit a non-corruption error at step 2: it raises it, process 0 stops too.
    assert second["error"] == {"error": "MemoryError", "message": "simulated out of memory in process 1"}
    assert first["error"]["error"] == "TrainingError"
    assert "process(es) [1]" in first["error"]["message"] and "nothing was moved" in first["error"]["message"]
    # Process 1 saw step 2 corrupt: both restore step 1, and step 2 is moved aside once.
    assert first["corrupt"] == second["corrupt"] == {"step": 1, "w": [1.0] * 4}
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["1"]
    assert [p.name for p in (tmp_path / "corrupt_checkpoints").iterdir()] == ["2"]
