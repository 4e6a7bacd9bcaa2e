"""Kill/resume exactness, SIGTERM, damaged checkpoints, config mismatch (1 device, in process).

Resumed runs must equal the uninterrupted one exactly (assert_array_equal): same device,
same XLA program, same batches and keys, so every float operation repeats bit for bit.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.train.state import params_as_numpy
from train_worker import run, small_config


def assert_same(params, expected):
    assert params.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(params[name], expected[name], err_msg=name)


class Crash(RuntimeError):
    pass


def crash_at(k):
    def hook(step, state):
        if step == k:
            raise Crash(f"simulated crash after step {k}")
    return hook


def test_sigterm_then_crash_then_resume_matches_uninterrupted(tmp_path, baseline):
    def send_sigterm(step, state):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    result = run(tmp_path, small_config(), after_step=send_sigterm)
    assert (result.status, result.step) == ("preempted", 5)  # saved at once, off the 4-step grid
    with pytest.raises(Crash):
        run(tmp_path, small_config(), resume=True, after_step=crash_at(10))
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [4, 5, 8]  # the crash after step 10 came before the step-12 save
    resumed = run(tmp_path, small_config(), resume=True)
    assert (resumed.status, resumed.step) == ("completed", 12)
    assert_same(params_as_numpy(resumed.state), baseline[1])


def largest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, baseline):
    shutil.copytree(baseline[0] / "checkpoints", tmp_path / "checkpoints")
    # A leftover temporary folder (a save killed mid-write) and a step folder whose data
    # file was cut in half (a copy or non-atomic filesystem interrupted mid-write).
    shutil.copytree(tmp_path / "checkpoints" / "12", tmp_path / "checkpoints" / "16.orbax-checkpoint-tmp-99")
    victim = largest_file(tmp_path / "checkpoints" / "12" / "state")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    result = run(tmp_path, small_config(), resume=True)
    assert (tmp_path / "corrupt_checkpoints" / "12").is_dir()
    assert not (tmp_path / "checkpoints" / "16.orbax-checkpoint-tmp-99").exists()
    assert result.step == 12  # resumed from 8, trained 4 steps again
    assert_same(params_as_numpy(result.state), baseline[1])


def test_checkpoint_of_other_model_is_an_error_not_corruption(tmp_path, baseline):
    shutil.copytree(baseline[0] / "checkpoints", tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="does not fit this model"):
        run(tmp_path, small_config("--config.task.hidden=(16, 8)"), resume=True)
    assert not (tmp_path / "corrupt_checkpoints").exists()


def test_existing_checkpoints_need_resume(tmp_path, baseline):
    shutil.copytree(baseline[0] / "checkpoints", tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="--resume"):
        run(tmp_path, small_config())


class _Iterator:
    def __init__(self, global_state):
        self.global_state, self.state = global_state, None

    def set_state(self, state):
        self.state = state


def test_data_state_of_another_process_count(tmp_path):
    from etils import epath

    from flashtalker_jax.train.checkpoint import IteratorRestore, IteratorStateHandler

    for i in range(2):
        (tmp_path / f"process_{i}-of-2.json").write_text('{"batch": 8}')
    handler, directory = IteratorStateHandler(), epath.Path(tmp_path)
    # A global-order iterator takes the state all saved processes agree on ...
    assert handler.restore(directory, IteratorRestore(_Iterator(True))).state == {"batch": 8}
    # ... a per-process one (grain) must resume on the same process count ...
    with pytest.raises(ConfigError, match="same number of processes"):
        handler.restore(directory, IteratorRestore(_Iterator(False)))
    # ... and saved states that disagree are never merged.
    (tmp_path / "process_1-of-2.json").write_text('{"batch": 7}')
    with pytest.raises(ConfigError, match="differ"):
        handler.restore(directory, IteratorRestore(_Iterator(True)))
