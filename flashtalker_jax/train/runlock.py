"""One run per run folder: a lock file held for the life of `fit`.

`<run>/.flashtalker.lock` is locked with flock(2) by process 0 of the run (every process
of a multi-process run shares the folder, so one holder is enough; the others learn the
outcome from process 0 and all stop together when it is refused). The kernel (or, on NFS,
the server's lease) releases the lock when the holder dies, so a lock file left by a
killed run never blocks: the file itself stays and only names its last holder (pid, host,
start time) for the error message. On a filesystem without flock support the file's
content is the fallback: a live process on this host blocks, a dead one does not, and one
on another host cannot be checked (a warning, then the run goes on).
"""
from __future__ import annotations

import errno
import fcntl
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

log = logging.getLogger(__name__)

LOCK_NAME = ".flashtalker.lock"


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


class RunLock:
    """Context manager: hold `<run_dir>/.flashtalker.lock`, or raise RunFolderInUse."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir).absolute() / LOCK_NAME
        self._fd: int | None = None

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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise self._refuse(_holder(self.path)) from None
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            self._check_content_without_flock()
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd

    def _check_content_without_flock(self) -> None:
        holder = _holder(self.path)
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int) or pid == os.getpid():
            return
        if host == socket.gethostname():
            if _alive(pid):
                raise self._refuse(holder)
            return
        log.warning("%s: the filesystem has no flock; the lock file names %s, which cannot be checked "
                    "from this host: going on", self.path, _describe(holder))

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
