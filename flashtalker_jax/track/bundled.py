"""The calibrated MediaPipe embedding of the procedural head, shipped with the package.

flashtalker_jax/bundled/procedural_embedding/ holds mediapipe_landmark_embedding.npz and
bundle.json (how it was made: launch/calibrate_embedding.py, its calibration statistics,
the sha256 of the npz and of the head topology it belongs to). It applies to any head
with exactly that topology (every procedural head: seeds change the blendshapes, not the
triangles); `track` uses it for such heads unless --embedding is given, and builds one
from MediaPipe's canonical mesh for any other head.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.track.embedding import LandmarkEmbedding, load_embedding
from flashtalker_jax.utils.files import sha256_file

FOLDER = Path(__file__).resolve().parent.parent / "bundled" / "procedural_embedding"
EMBEDDING = "mediapipe_landmark_embedding.npz"
RECORD = "bundle.json"


def topology_sha256(faces: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(faces, np.int64)).tobytes()).hexdigest()




def bundled_embedding(faces: np.ndarray, folder: Path = FOLDER) -> LandmarkEmbedding | None:
    """The shipped embedding when `faces` is its topology, else None (also when nothing is
    shipped at `folder`). A shipped file that does not match its record is an error (a
    damaged install), never silently skipped."""
    record_path = folder / RECORD
    if not folder.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(record_path, f"unreadable bundle record ({err})", "reinstall flashtalker-jax") from err
    if topology_sha256(faces) != record["topology_sha256"]:
        return None
    path = folder / EMBEDDING
    if not path.is_file() or sha256_file(path) != record["embedding_sha256"]:
        raise ModelFileError(path, "missing or differs from its bundle.json checksum", "reinstall flashtalker-jax")
    return load_embedding(path, len(faces))
