"""Atomic writes (a reader never sees a half-written file, a kill never leaves one) and
reads of saved arrays that fail with the project's error naming the file, not a traceback."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from flashtalker_jax.errors import ModelFileError

# What numpy and zipfile raise for a truncated, overwritten or foreign file: a bad zip
# directory or member CRC, a short header or data block, a pickled (object) array.
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (model files run to hundreds of MB).
    OSError propagates: callers say which file and what to do."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def copy_tree_linking_duplicates(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """shutil.copytree, except that a file whose bytes equal a file already copied becomes a
    hard link to that copy (FLAME folders carry the same 76 MB model under two names; a plain
    copytree breaks the source's link and stores it twice). Copies where links are refused."""
    first_copy: dict[str, str] = {}

    def copy(src, dst):
        digest = sha256_file(src)
        if digest in first_copy:
            try:
                os.link(first_copy[digest], dst)
                return dst
            except OSError:  # filesystems without hard links
                pass
        shutil.copy2(src, dst)
        first_copy.setdefault(digest, dst)
        return dst

    shutil.copytree(source, target, copy_function=copy)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_npz(path: str | os.PathLike, what: str, fix: str, keys: Sequence[str] = (),
             error: type[Exception] = ModelFileError) -> dict[str, np.ndarray]:
    """Every array of the .npz at `path`, read in full now (so a damaged member fails here,
    not at first use), each of `keys` required. A missing, truncated or non-.npz file or a
    missing key raises `error(path, problem, fix)`; `what` names the content ("avatar state")."""
    path = Path(path)
    if not path.is_file():
        raise error(path, f"{what} file not found", fix)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except READ_ERRORS as exc:
        raise error(path, f"cannot read {what} ({type(exc).__name__}: {exc})", fix) from exc
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise error(path, f"{what} lacks {', '.join(repr(k) for k in missing)} (has {sorted(arrays)})", fix)
    return arrays


def read_json_object(path: str | os.PathLike, what: str, fix: str,
                     error: type[Exception] = ModelFileError) -> dict:
    """The JSON object at `path`; unreadable or invalid JSON, or JSON that is not an object,
    raises `error(path, problem, fix)` (a missing file too, as an OSError of reading it)."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise error(path, f"cannot read {what} ({type(err).__name__}: {err})", fix) from None
    if not isinstance(value, dict):
        raise error(path, f"{what} holds a {type(value).__name__}, expected a JSON object", fix)
    return value


def read_model_folder(path: Path, kind: str, weights: str, version: int, give: str, rewrite: str
                      ) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(meta, config, weights) of a versioned model folder: meta.json (with format_version),
    config.json and the `weights` .npz, as RUN/prior and RUN/encoder are written (meta.json
    last). ModelFileError naming the folder (`give`: how to get one) when it is absent, else
    the file that is missing, unreadable or of another format version (`rewrite`: how to
    write it again)."""
    if not path.is_dir():
        raise ModelFileError(path, f"{kind} folder not found", give)
    for name in ("meta.json", "config.json", weights):
        if not (path / name).is_file():
            raise ModelFileError(path / name, f"file of the {kind} folder is missing", rewrite)
    meta = read_json_object(path / "meta.json", f"{kind} metadata", rewrite)
    if meta.get("format_version") != version:
        raise ModelFileError(path / "meta.json", f"format_version {meta.get('format_version')!r}, this "
                                                 f"flashtalker reads {version}", rewrite)
    config = read_json_object(path / "config.json", f"{kind} task config", rewrite)
    return meta, config, read_npz(path / weights, f"{kind} weights", rewrite)


def read_npy(path: str | os.PathLike, what: str, fix: str, error: type[Exception] = ModelFileError) -> np.ndarray:
    """The array of the .npy at `path`, or `error(path, problem, fix)` (see read_npz)."""
    path = Path(path)
    if not path.is_file():
        raise error(path, f"{what} file not found", fix)
    try:
        array = np.load(path, allow_pickle=False)
    except READ_ERRORS as exc:
        raise error(path, f"cannot read {what} ({type(exc).__name__}: {exc})", fix) from exc
    if not isinstance(array, np.ndarray):
        array.close()
        raise error(path, f"cannot read {what} (an .npz archive, not a single .npy array)", fix)
    return array
