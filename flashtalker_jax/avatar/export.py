"""The avatar folder: what `flashtalker adapt` writes and speak, eval, eval-avatar and bench
read (renderer.load_renderer; adapt.load_avatar for the full training model).

  config.json   the adaptation task config
  meta.json     format_version, frame and camera counts, audio feature size (audio_dim)
  flame/        copy of the FLAME files used
  identity.npz  shape, static_offset
  state.npz     every model variable by its path (adapt_model.AdaptModel; the inference
                model reads all but refinement/*)
FORMAT_VERSION history: 1 = the unversioned folders of the first session (no field);
2 = adds the field and, for densified per-face avatars, the template shifts and
densification variables. `read_avatar_folder` reads exactly FORMAT_VERSION and names
meta.json with a fix otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ModelFileError

FORMAT_VERSION = 2
FILES = ("config.json", "meta.json", "identity.npz", "state.npz", "flame")


@dataclasses.dataclass(frozen=True)
class AvatarFolder:
    """A read avatar folder: meta {format_version, n_frames, n_cameras, audio_dim}, shape
    (S,), static_offset (V, 3) or None, state {variable path: array}."""
    path: Path
    task_cfg: ml_collections.ConfigDict
    meta: dict
    shape: np.ndarray
    static_offset: np.ndarray | None
    state: dict[str, np.ndarray]


def resolve_avatar_dir(path) -> Path:
    """RUN/avatar when given the run folder RUN of `flashtalker adapt`, else the path."""
    path = Path(path)
    return path / "avatar" if (path / "avatar").is_dir() else path


def flat_state(module: nnx.Module) -> dict[str, np.ndarray]:
    """{variable path: array} of a module, the keys of state.npz."""
    from flashtalker_jax.train.state import key_path_str

    state = nnx.state(module)
    return {key_path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}


def write_avatar_folder(out_dir: Path, task_cfg, flame_src: Path, identity: dict[str, np.ndarray],
                        meta: dict, state: dict[str, np.ndarray]) -> Path:
    """Write the folder (module docstring; meta gets format_version) and return its path."""
    from flashtalker_jax.utils.files import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(flame_src, out_dir / "flame", dirs_exist_ok=True)
    with atomic_path(out_dir / "identity.npz") as tmp:
        np.savez(tmp, **identity)
    (out_dir / "meta.json").write_text(json.dumps({"format_version": FORMAT_VERSION, **meta}, indent=1))
    (out_dir / "config.json").write_text(task_cfg.to_json_best_effort(indent=1))
    with atomic_path(out_dir / "state.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **state)
    return out_dir


def read_avatar_folder(avatar_dir) -> AvatarFolder:
    """Every file of an avatar folder; ModelFileError naming the folder or meta.json when a
    file is missing or the format version is not FORMAT_VERSION."""
    avatar_dir = Path(avatar_dir)
    for name in FILES:
        if not (avatar_dir / name).exists():
            raise ModelFileError(avatar_dir, f"not an avatar folder: {name} is missing",
                                 "point --avatar at RUN/avatar written by `flashtalker adapt`")
    meta = _read_meta(avatar_dir / "meta.json")
    task_cfg = ml_collections.ConfigDict(json.loads((avatar_dir / "config.json").read_text()))
    with np.load(avatar_dir / "identity.npz") as identity:
        shape = identity["shape"]
        static_offset = identity["static_offset"] if "static_offset" in identity else None
    with np.load(avatar_dir / "state.npz") as saved:
        state = dict(saved)
    return AvatarFolder(avatar_dir, task_cfg, meta, shape, static_offset, state)


def restore_state(module: nnx.Module, folder: AvatarFolder, skip: tuple[str, ...] = ()) -> None:
    """Write the folder's saved variables into `module`, whose variables must be exactly the
    saved ones outside the top-level attributes `skip` (ModelFileError naming state.npz)."""
    from flashtalker_jax.train.state import key_path_str

    stored = {k: v for k, v in folder.state.items() if k.split("/")[0] not in skip}
    expected = flat_state(module)
    if set(stored) != set(expected):
        raise ModelFileError(folder.path / "state.npz", "variables do not match the config "
                             f"({len(set(stored) ^ set(expected))} differ)")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(module))
    new = [jnp.asarray(stored[key_path_str(p)]) for p, _ in leaves]
    nnx.update(module, jax.tree_util.tree_unflatten(treedef, new))


def _read_meta(path: Path) -> dict:
    """meta.json, refused unless its format_version is FORMAT_VERSION."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(path, f"unreadable avatar metadata ({err})",
                             "re-export the avatar with `flashtalker adapt`") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version is None:
        raise ModelFileError(path, "no format_version: the folder was written by an older "
                                   f"flashtalker (avatar format 1; this one reads {FORMAT_VERSION})",
                             "re-run `flashtalker adapt` (or `--resume` it from its checkpoints) "
                             "to write a current avatar folder")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(path, f"format_version {version!r} is newer than this flashtalker "
                                   f"reads ({FORMAT_VERSION})",
                             "upgrade flashtalker_jax to the version that wrote the avatar")
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"format_version {version} is no longer supported (this "
                                   f"flashtalker reads {FORMAT_VERSION})",
                             "re-run `flashtalker adapt` to write a current avatar folder")
    return meta
