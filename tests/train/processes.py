"""Run the processes of one multi-process job together (tests/train helpers)."""
from __future__ import annotations

import subprocess
import time


def run_together(commands: list[list[str]], env: dict, seconds: float) -> list[str]:
    """Start every command at once and wait under one shared deadline (a process whose
    peer died or went elsewhere waits forever in a collective); leftovers are killed.
    Each must exit 0 (else the assertion shows its log tail); returns their logs."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd in commands]
    deadline = time.monotonic() + seconds
    try:
        logs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs
