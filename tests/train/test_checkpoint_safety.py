"""Checkpoints never silently lose a run (1 device, in process): only recognised corruption
is quarantined, other restore errors stop the run, a run whose every checkpoint is
unreadable is refused unless --restart, and one run folder holds one run at a time."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.train.checkpoint import COMMIT_MARKER, Checkpointer, UnreadableCheckpoints, is_corruption
from flashtalker_jax.train.runlock import LOCK_NAME, RunFolderInUse
from flashtalker_jax.train.state import params_as_numpy
from flashtalker_jax.utils.child import child_env
from train_worker import SMALL_OVERRIDES, run, small_config


def assert_same(params, expected):
    assert params.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(params[name], expected[name], err_msg=name)


def copy_baseline(baseline, run_dir: Path) -> Path:
    shutil.copytree(baseline[0] / "checkpoints", run_dir / "checkpoints")
    return run_dir / "checkpoints"


def step_dirs(checkpoints: Path) -> list[int]:
    return sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())


def truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("error", [MemoryError("simulated out of memory"),
                                   OSError(errno.EIO, "simulated Input/output error")],
                         ids=["MemoryError", "EIO"])
def test_non_corruption_restore_error_propagates_and_nothing_is_moved(tmp_path, baseline, monkeypatch, error):
    checkpoints = copy_baseline(baseline, tmp_path)

    def failing_restore(self, directory, *args, **kwargs):
        raise error

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "restore", failing_restore)  # Orbax's state reader
    with pytest.raises(type(error), match="simulated"):
        run(tmp_path, small_config(), resume=True)
    assert not (tmp_path / "corrupt_checkpoints").exists()
    assert step_dirs(checkpoints) == [4, 8, 12]


def test_truncated_step_is_quarantined_and_previous_restores(tmp_path, baseline):
    checkpoints = copy_baseline(baseline, tmp_path)
    assert (checkpoints / "12" / COMMIT_MARKER).is_file()  # written once the step was complete
    # One byte off a data file: Orbax alone may read the needed byte ranges and not notice;
    # the commit marker's sizes do.
    victim = max((p for p in (checkpoints / "12" / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
                 key=lambda p: p.stat().st_size)
    truncate(victim, victim.stat().st_size - 1)
    result = run(tmp_path, small_config(), resume=True)
    assert (tmp_path / "corrupt_checkpoints" / "12").is_dir()
    assert result.step == 12  # resumed from 8, trained 4 steps again
    assert_same(params_as_numpy(result.state), baseline[1])


def test_truncated_step_without_marker_is_recognised_from_orbax_error(tmp_path, baseline):
    """A step without a marker (older checkpoint, or killed right after Orbax's rename):
    a truncated metadata file fails with a JSON decode error, a recognised corruption."""
    checkpoints = copy_baseline(baseline, tmp_path)
    (checkpoints / "12" / COMMIT_MARKER).unlink()
    victim = checkpoints / "12" / "state" / "_METADATA"
    truncate(victim, victim.stat().st_size // 2)
    result = run(tmp_path, small_config(), resume=True)
    assert (tmp_path / "corrupt_checkpoints" / "12").is_dir()
    assert_same(params_as_numpy(result.state), baseline[1])


def test_corruption_is_recognised_by_kind_not_by_any_exception():
    chained = Exception("Encountered error while reading array index")
    chained.__cause__ = ValueError('NOT_FOUND: Error reading local file "x"')
    for exc in (FileNotFoundError(errno.ENOENT, "gone"), json.JSONDecodeError("bad", "{", 0),
                ValueError("OUT_OF_RANGE: Requested byte range [0, 5460) is not valid"), chained):
        assert is_corruption(exc), exc
    for exc in (MemoryError(), OSError(errno.EIO, "Input/output error"), PermissionError(errno.EACCES, "denied"),
                ValueError("UNAVAILABLE: try again"), RuntimeError("bug")):
        assert not is_corruption(exc), exc


def test_all_steps_unreadable_is_refused_then_restart_starts_over(tmp_path, baseline, capsys):
    out = tmp_path / "run"
    checkpoints = copy_baseline(baseline, out)
    for step in (4, 8, 12):
        victim = checkpoints / str(step) / "state" / "_METADATA"
        truncate(victim, victim.stat().st_size // 2)
    args = ["train", "--config", "train_toy", "--out", str(out), *SMALL_OVERRIDES, "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "none can be read" in err and "--restart" in err
    assert all(f"step {s}:" in err for s in (4, 8, 12)), err
    assert step_dirs(checkpoints) == [4, 8, 12] and not (out / "corrupt_checkpoints").exists()
    with pytest.raises(UnreadableCheckpoints):  # the same through fit()
        run(out, small_config(), resume=True)

    assert main([*args, "--restart"]) == 0
    assert step_dirs(out / "corrupt_checkpoints") == [4, 8, 12]
    ckpt = Checkpointer(checkpoints)
    try:
        assert ckpt.all_steps() == [4, 8, 12]  # the new run's steps
    finally:
        ckpt.close()
    result = run(out, small_config(), resume=True)  # nothing left to train: the restored step 12
    assert result.step == 12
    assert_same(params_as_numpy(result.state), baseline[1])


def test_restart_without_resume_moves_old_steps_aside(tmp_path, baseline):
    copy_baseline(baseline, tmp_path)
    result = run(tmp_path, small_config(), restart=True)
    assert result.step == 12
    assert_same(params_as_numpy(result.state), baseline[1])
    (aside,) = (tmp_path / "replaced_checkpoints").iterdir()
    assert step_dirs(aside) == [4, 8, 12]


def test_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(tmp_path, baseline, capsys):
    refused = []

    def second_run(step, state):
        if step == 2:
            with pytest.raises(RunFolderInUse, match=f"in use by another run .*pid {os.getpid()}") as info:
                run(tmp_path, small_config(), resume=True)
            refused.append(str(info.value))
            args = ["train", "--config", "train_toy", "--out", str(tmp_path), *SMALL_OVERRIDES, "--resume",
                    "--config.train.log_every=7"]
            assert main(args) == 2 and "in use by another run" in capsys.readouterr().err
            saved = json.loads((tmp_path / "config.json").read_text())
            assert saved["train"]["log_every"] == small_config().train.log_every != 7  # untouched

    result = run(tmp_path, small_config(), after_step=second_run)
    assert refused and result.step == 12
    assert_same(params_as_numpy(result.state), baseline[1])  # not interleaved with the refused run
    assert step_dirs(tmp_path / "checkpoints") == [4, 8, 12]


HOLD_LOCK = """
import sys
from flashtalker_jax.train.runlock import RunLock
RunLock(sys.argv[1]).__enter__()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_lock_held_by_another_process_blocks_and_a_dead_holder_does_not(tmp_path, baseline):
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=child_env(dict(os.environ, JAX_PLATFORMS="cpu")))
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderInUse, match=f"pid {child.pid} "):
            run(tmp_path, small_config())
    finally:
        child.send_signal(signal.SIGKILL)  # killed: the lock file stays, naming a dead pid
        child.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == child.pid
    result = run(tmp_path, small_config())
    assert result.step == 12
    assert_same(params_as_numpy(result.state), baseline[1])
