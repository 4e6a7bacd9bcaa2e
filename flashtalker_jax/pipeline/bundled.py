"""The motion prior that ships with the package: an Audio2Param run for the procedural head.

flashtalker_jax/bundled/motion_prior/ is an ordinary motion run folder (model.json,
model.npz, templates.npy, norms/; what pretrain-a2e writes, with the training machine's
paths removed from model.json) plus:
  bundle.json           how it was made: the resolved config of configs/motion_prior.py,
                        the sha256 of every model file, the procedural head it was trained
                        on (flame_seed and flame_content_sha256), the command
  training_report.json  the training run's summary, loss curve and timings
launch/train_motion_prior.py trains it from a fixed seed and writes this folder; it
reproduces the files bit for bit on the same software (tests/speak/test_bundled_prior.py).

`speak` without --a2e uses it, but only on an avatar whose FLAME files are that procedural
head (its expression basis is what the model's coefficients mean); any other head is
refused with the fix (pass --a2e), never silently driven by a model made for another head.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.utils.files import sha256_file

BUNDLED_NAME = "bundled motion prior"
BUNDLE_FILE = "bundle.json"
REPORT_FILE = "training_report.json"
MODEL_FILES = ("model.json", "model.npz", "templates.npy", "norms/motion.npz", "norms/audio.npz")


def bundled_run() -> Path:
    """The bundled run folder inside the installed package (ModelFileError when a file of it
    is missing, e.g. a wheel built without package data)."""
    folder = Path(__file__).resolve().parent.parent / "bundled" / "motion_prior"
    for name in (*MODEL_FILES, BUNDLE_FILE):
        if not (folder / name).is_file():
            raise ModelFileError(folder / name, "missing from the installed package (the bundled motion prior)",
                                 "reinstall flashtalker-jax, or pass --a2e RUN")
    return folder




def model_sha256(folder: Path) -> dict[str, str]:
    return {name: sha256_file(Path(folder) / name) for name in MODEL_FILES}


def read_bundle(folder: Path | None = None) -> dict:
    folder = Path(folder) if folder else bundled_run()
    return json.loads((folder / BUNDLE_FILE).read_text())


def flame_content_sha256(model) -> str:
    """sha256 of a FlameModel's geometry (template, shape/expression/pose bases, faces) as
    float32 / int32 bytes: the same for a head built in memory and for its files read back,
    independent of how the pickles were written."""
    digest = hashlib.sha256()
    for name in ("v_template", "shape_dirs", "expr_dirs", "posedirs", "faces"):
        array = np.asarray(getattr(model, name))
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, np.int32 if name == "faces" else np.float32).tobytes())
    return digest.hexdigest()


def check_procedural_head(avatar_dir: str | Path, bundle: dict) -> None:
    """ConfigError unless the avatar folder's FLAME files are the head the bundled prior
    was trained on."""
    from flashtalker_jax.avatar.export import resolve_avatar_dir
    from flashtalker_jax.flame import load_flame_model

    flame_dir = resolve_avatar_dir(avatar_dir) / "flame"
    if not flame_dir.is_dir():
        raise ModelFileError(flame_dir, "missing (the avatar folder's FLAME files)",
                             "re-export the avatar (flashtalker adapt --resume)")
    found = flame_content_sha256(load_flame_model(flame_dir))
    if found != bundle["flame_content_sha256"]:
        raise ConfigError(f"{avatar_dir}: the bundled motion prior drives only avatars on the procedural head "
                          f"(procedural FLAME seed {bundle['flame_seed']}), and this avatar's FLAME model is "
                          f"another head; pass --a2e RUN, a motion run (pretrain-a2e / adapt-a2e) made for "
                          f"this head")
