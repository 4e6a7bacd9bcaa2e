"""Per-clip feature cache: features are computed once per (audio content, feature settings).

Used by `FeatureExtractor.features` (audio/extractor.py) when it has a cache folder.

The cache key is the SHA-256 of the audio file's bytes plus a hash of everything that
changes the result: the feature kind, the full audio feature config, the fps and, for
wav2vec2, the model's checkpoint id. Renaming or moving a clip keeps its cache entry;
editing it, the config or the checkpoint makes a new one. Entries are .npy files written
atomically, so an interrupted run never leaves a truncated entry behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np

from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path, sha256_file

def file_sha256(path: str | os.PathLike) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise InputFileError(path, f"cannot read audio file ({exc})") from exc


def cache_key(path: str | os.PathLike, kind: str, config: ml_collections.ConfigDict, fps: float,
              model=None) -> str:
    settings = {"kind": kind, "config": config.to_dict(), "fps": fps,
                "model": None if model is None else model.checkpoint_id}
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{file_sha256(path)[:24]}-{settings_hash[:16]}"


def read_or_write(entry: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at `entry`, or `compute()` written there atomically first."""
    if entry.is_file():
        return np.load(entry)
    features = compute()
    with atomic_path(entry) as tmp:
        with open(tmp, "wb") as file:
            np.save(file, features)
    return features
