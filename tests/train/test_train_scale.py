"""Sharding and multi-process parity: 8 simulated devices and 2 real processes vs 1 device.

Different device counts reduce gradients in a different order, so parameters agree to
float32 rounding, not bitwise: after 12 Adam steps differences were <= 3e-8 here; the
tolerance (atol 2e-6, ~ 10 ulp at the parameters' scale of ~0.3 plus Adam's amplification
of tiny gradient differences) is far below the size of one update (lr * ~1 = 3e-3), so a
wrong reduction or a dropped shard fails it. Restoring a saved checkpoint on another mesh
moves bytes only, so that must be exact.

The 8-device and 2-process runs are subprocesses: XLA_FLAGS and jax.distributed must be
set before JAX starts, and must not leak into this pytest process (1 CPU device).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import portpicker
import pytest

from flashtalker_jax.train.checkpoint import Checkpointer
from flashtalker_jax.train.mesh import make_mesh, state_shardings, with_shardings
from flashtalker_jax.train.optim import make_optimizer
from flashtalker_jax.train.state import abstract_state, params_as_numpy
from flashtalker_jax.train.tasks import get_task
from flashtalker_jax.utils.child import child_env
from processes import run_together
from train_worker import run, small_config

WORKER = Path(__file__).with_name("train_worker.py")
ATOL = 2e-6


def worker_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", **extra)
    return child_env(env, extra_paths=(str(WORKER.parent),))


def restore_on_one_device(checkpoints: Path) -> tuple[dict, int]:
    """Load a checkpoint saved elsewhere into this process's 1-device mesh."""
    config = small_config()
    task = get_task(config.task)
    tx, _ = make_optimizer(config.optim, config.train.steps)
    _, shapes = abstract_state(task.make_model, tx)
    mesh = make_mesh(devices=jax.devices()[:1])
    target = with_shardings(shapes, state_shardings(mesh, shapes))
    ckpt = Checkpointer(checkpoints)
    try:
        state, step = ckpt.restore_latest(target)
    except Exception:
        ckpt.close()
        raise
    ckpt.close()
    return params_as_numpy(state), step


def assert_close(params, expected, atol=ATOL):
    assert params.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(params[name], expected[name], rtol=0, atol=atol, err_msg=name)


@pytest.mark.slow
def test_eight_devices_match_one_and_restore_on_one(tmp_path, baseline):
    env = worker_env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run([sys.executable, str(WORKER), "devices8", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for mesh in ("mesh8x1", "mesh4x2"):
        params = dict(np.load(tmp_path / mesh / "params.npz"))
        assert_close(params, baseline[1])
        restored, step = restore_on_one_device(tmp_path / mesh / "checkpoints")
        assert step == 12
        assert_close(restored, params, atol=0)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_agree_and_their_checkpoint_restores_in_one(tmp_path, baseline):
    address = f"localhost:{portpicker.pick_unused_port()}"
    run_together([[sys.executable, str(WORKER), "multiproc", str(tmp_path), address, "2", str(i)] for i in range(2)],
                 worker_env(), 240)
    first, second = (dict(np.load(tmp_path / f"params_{i}.npz")) for i in range(2))
    assert_close(second, first, atol=0)  # both processes hold the same replicated params
    assert_close(first, baseline[1])
    data_files = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "12" / "data").glob("*.json"))
    assert data_files == ["process_0-of-2.json", "process_1-of-2.json"]
    restored, step = restore_on_one_device(tmp_path / "run" / "checkpoints")
    assert step == 12
    assert_close(restored, first, atol=0)
    # Elastic resume: the 2-process run's step-8 checkpoint (data state in
    # process_*-of-2.json) goes on in this 1-process pytest to the same step-12 parameters.
    shutil.copytree(tmp_path / "run" / "checkpoints", tmp_path / "elastic" / "checkpoints")
    shutil.rmtree(tmp_path / "elastic" / "checkpoints" / "12")
    resumed = run(tmp_path / "elastic", small_config(), resume=True)
    assert (resumed.status, resumed.step) == ("completed", 12)
    assert_close(params_as_numpy(resumed.state), baseline[1])
