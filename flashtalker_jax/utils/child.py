"""Child Python processes that import the same flashtalker_jax as this process.

`-P` keeps the child's working directory off sys.path (a folder there must not shadow a
package), and PYTHONPATH names the folder this process imported flashtalker_jax from: a
checkout (tests run from the repository root) or site-packages (an installed package).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import flashtalker_jax

PACKAGE_PARENT = str(Path(flashtalker_jax.__file__).resolve().parent.parent)


def python_command(*args: str) -> list[str]:
    """[python, -P, *args] for this interpreter."""
    return [sys.executable, "-P", *args]


def child_env(env: dict | None = None, extra_paths: tuple[str, ...] = ()) -> dict:
    """A copy of `env` (default os.environ) whose PYTHONPATH starts with `extra_paths` and
    the folder holding this process's flashtalker_jax."""
    env = dict(os.environ if env is None else env)
    paths = [*extra_paths, PACKAGE_PARENT]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
