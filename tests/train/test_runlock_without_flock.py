"""The run-folder lock where flock is unavailable (train/runlock.py): a platform without
fcntl, or a filesystem whose flock fails with ENOLCK/EOPNOTSUPP/..., falls back to an
exclusively created claim file, with a warning. One claimant wins even when many start at
once (also threads of one process); an existing claim refuses the run, naming the file to
delete, whether its holder runs, was killed or is on another host; the claim goes when
the run ends; flock errors that do not mean "unsupported" are raised."""
from __future__ import annotations

import errno
import json
import logging
import socket
import subprocess
import sys
import threading

import pytest

from flashtalker_jax.train import runlock
from flashtalker_jax.train.runlock import CLAIM_NAME, RunFolderInUse, RunLock


def flock_failing_with(code: int):
    def flock(fd, operation):
        raise OSError(code, f"simulated {errno.errorcode[code]}")
    return flock


@pytest.fixture(params=["no_fcntl", "ENOLCK", "EOPNOTSUPP"])
def no_flock(request, monkeypatch):
    """Each way flock can be unavailable."""
    if request.param == "no_fcntl":
        monkeypatch.setattr(runlock, "fcntl", None)
    else:
        monkeypatch.setattr(runlock.fcntl, "flock", flock_failing_with(getattr(errno, request.param)))
    return request.param


def test_claim_is_held_for_the_run_and_released_after(tmp_path, no_flock, caplog):
    with caplog.at_level(logging.WARNING, logger=runlock.__name__):
        with RunLock(tmp_path):
            claim = json.loads((tmp_path / CLAIM_NAME).read_text())
            assert claim["pid"] == runlock.os.getpid() and claim["host"] == socket.gethostname()
            with pytest.raises(RunFolderInUse, match=rf"it is running.*the file {tmp_path / CLAIM_NAME}: if"):
                RunLock(tmp_path).__enter__()   # a second run of the same process: refused
            assert (tmp_path / CLAIM_NAME).is_file()  # the refused one leaves the claim alone
    assert "claimed with" in caplog.text and str(tmp_path / CLAIM_NAME) in caplog.text
    assert not (tmp_path / CLAIM_NAME).exists()
    with RunLock(tmp_path):   # free again
        pass


def test_of_many_simultaneous_claimants_exactly_one_wins(tmp_path, no_flock):
    start, outcomes = threading.Barrier(8), []

    def claimant():
        lock = RunLock(tmp_path)
        start.wait()
        try:
            lock.__enter__()
            outcomes.append(lock)
        except RunFolderInUse:
            outcomes.append(None)

    threads = [threading.Thread(target=claimant) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [lock for lock in outcomes if lock is not None]
    assert len(outcomes) == 8 and len(winners) == 1
    winners[0].__exit__(None, None, None)
    assert not (tmp_path / CLAIM_NAME).exists()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("holder, state", [
    (lambda: {"pid": dead_pid(), "host": socket.gethostname(), "started": "x"}, "is no longer running"),
    (lambda: {"pid": 1, "host": "another-host.invalid", "started": "x"}, "cannot be checked from this host"),
    (lambda: {}, "a run starting now, or a damaged claim"),
], ids=["killed_here", "other_host", "empty"])
def test_a_left_claim_refuses_and_names_the_file_to_delete(tmp_path, no_flock, holder, state):
    (tmp_path / CLAIM_NAME).write_text(json.dumps(holder()))
    with pytest.raises(RunFolderInUse) as info:
        RunLock(tmp_path).__enter__()
    message = str(info.value)
    assert state in message and f"the file {tmp_path / CLAIM_NAME}: if that run is over, delete" in message
    (tmp_path / CLAIM_NAME).unlink()   # what the message says to do
    with RunLock(tmp_path):
        pass


def test_flock_errors_other_than_unsupported_are_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock.fcntl, "flock", flock_failing_with(errno.EIO))
    with pytest.raises(OSError, match="simulated EIO"):
        RunLock(tmp_path).__enter__()
    assert not (tmp_path / CLAIM_NAME).exists()
