"""User-facing error types, raised at stage boundaries with the file and the fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os


class FlashtalkerError(Exception):
    """Base class: a problem the user can fix (bad input, model file or config)."""


def _describe(path: str | os.PathLike | None, problem: str, fix: str | None) -> str:
    """`path: problem (fix)` on one line (line breaks of quoted exceptions become spaces)."""
    message = f"{os.fspath(path)}: {problem}" if path is not None else problem
    if fix:
        message += f" ({fix})"
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


class InputFileError(FlashtalkerError):
    """An input file (audio, image, video, dataset folder) is missing, corrupt or inconsistent."""

    def __init__(self, path, problem: str, fix: str | None = None):
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(_describe(path, problem, fix))


class ModelFileError(FlashtalkerError):
    """A model file (FLAME pickle, checkpoint, avatar folder) is missing, unsafe or malformed."""

    def __init__(self, path, problem: str, fix: str | None = None):
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(_describe(path, problem, fix))


class ConfigError(FlashtalkerError):
    """A config file or command-line override is invalid."""


class TrainingError(FlashtalkerError):
    """Training cannot continue (e.g. persistent non-finite losses); the last good checkpoint is kept."""
