"""One run per run folder: a lock file held for the life of `fit`.

`<run>/.flashtalker.lock` is locked with flock(2) by process 0 of the run (every process
of a multi-process run shares the folder, so one holder is enough; the others learn the
outcome from process 0 and all stop together when it is refused). The kernel (or, on NFS,
the server's lease) releases the lock when the holder dies, so a lock file left by a
killed run never blocks: the file itself stays and only names its last holder (pid, host,
start time) for the error message.

Without flock (a filesystem that refuses it, or a platform without fcntl) the run claims
the folder by creating `<run>/.flashtalker.lock.claim` exclusively (O_EXCL: one creator
wins, also on NFSv3+) and removes it when it ends; a warning says so. An existing claim
refuses the run whatever its holder's state: a live holder is in the folder, and a claim
left by a killed run (its pid gone on this host) or by a run on another host (which
cannot be checked from here) is only removed by the user, whom the error tells which file
to delete. Never guessing is what keeps two runs from interleaving.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from flashtalker_jax.errors import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: the claim file (module docstring) stands in for flock
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".flashtalker.lock"
CLAIM_NAME = LOCK_NAME + ".claim"
_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)            # flock: another holder
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # flock: not supported


class RunFolderInUse(ConfigError):
    """Another run holds the run folder."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


class RunLock:
    """Context manager: hold `<run_dir>/.flashtalker.lock`, or raise RunFolderInUse."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir).absolute() / LOCK_NAME
        self.claim = self.path.with_name(CLAIM_NAME)
        self._fd: int | None = None
        self._claimed: dict | None = None  # our claim file's content, when flock is not used

    def __enter__(self) -> "RunLock":
        error = None
        if jax.process_index() == 0:
            try:
                self._acquire()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other processes
                error = exc
        if jax.process_count() > 1:
            refused = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
            if refused and error is None:
                error = RunFolderInUse(f"{self.path.parent} is in use by another run (see process 0's error)")
        if error is not None:
            raise error
        return self

    def _refuse(self, holder: dict) -> RunFolderInUse:
        return RunFolderInUse(f"{self.path.parent} is in use by another run ({_describe(holder)}; lock file "
                              f"{self.path}): wait for it to finish or stop it, or choose another --out")

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not self._flock(fd):
                self._claim_without_flock()
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self._claimed or _me()).encode(), 0)
        except BaseException:
            self._release_claim()
            os.close(fd)
            raise
        self._fd = fd

    def _flock(self, fd: int) -> bool:
        """True when flock now holds the file, False when flock is unavailable here;
        RunFolderInUse when another process holds it, other errors as raised."""
        reason = "this platform has no fcntl"
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno in _HELD:
                    raise self._refuse(_holder(self.path)) from None
                if exc.errno not in _NO_FLOCK:
                    raise
                reason = f"the filesystem refuses flock ({os.strerror(exc.errno)})"
        log.warning("%s: %s; the run folder is claimed with %s instead (a killed run leaves it behind: "
                    "delete it then)", self.path.parent, reason, self.claim)
        return False

    def _claim_without_flock(self) -> None:
        """Create the claim file exclusively, or raise RunFolderInUse saying who holds it."""
        me = _me()
        try:
            fd = os.open(self.claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise self._refuse_claim(_holder(self.claim)) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))
        self._claimed = me

    def _refuse_claim(self, holder: dict) -> RunFolderInUse:
        pid, host = holder.get("pid"), holder.get("host")
        if not holder:
            state = "a run starting now, or a damaged claim"
        elif host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            state = f"pid {pid} on this host is no longer running (the run was killed)"
        elif host == socket.gethostname():
            state = "it is running"
        else:
            state = "it cannot be checked from this host"
        return RunFolderInUse(f"{self.path.parent} is claimed by another run ({_describe(holder)}; {state}). "
                              f"This filesystem has no flock, so the claim is the file {self.claim}: if that "
                              "run is over, delete the file and start again; otherwise wait for it, or "
                              "choose another --out")

    def _release_claim(self) -> None:
        if self._claimed is not None:
            if _holder(self.claim) == self._claimed:  # ours still (never remove another run's)
                self.claim.unlink()
            self._claimed = None

    def __exit__(self, *exc) -> None:
        self._release_claim()
        if self._fd is not None:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                except OSError:
                    pass
            os.close(self._fd)
            self._fd = None
