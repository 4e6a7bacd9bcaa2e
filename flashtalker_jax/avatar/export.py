"""The avatar folder: what `flashtalker adapt` writes and speak, eval, eval-avatar and bench
read (renderer.load_renderer; adapt.load_avatar for the full training model). It is
self-contained: copied anywhere, it renders and speaks with the training data gone.

  config.json   the adaptation task config (task.data / task.flame resolved to absolute
                paths: where it was trained from, never read back)
  meta.json     format_version, frame and camera counts, audio feature size (audio_dim),
                replay camera index and fps, flame_sha256 {file in flame/: sha256}
  flame/        copy of the FLAME files used (checked against flame_sha256 when read)
  identity.npz  shape, static_offset
  view.npz      the camera speak renders from (the replay camera's first frame): viewmat
                (4, 4) world-to-camera OpenCV, K (3, 3) pixels of width x height, width, height
  track.npz     the identity's tracked frames of the replay camera in time order, the pose
                track speak replays: rotation, neck_pose, eyes_pose, translation, expr,
                jaw_pose (N, k) float32 and timesteps (N,)
  state.npz     every model variable by its path (adapt_model.AdaptModel; the inference
                model reads all but refinement/*), the audio normalisation (audio_mean,
                audio_std) included
FORMAT_VERSION history: 1 = the unversioned folders of the first session (no field);
2 = adds the field and, for densified per-face avatars, the template shifts and
densification variables; 3 = adds view.npz, track.npz and flame_sha256 (speak and eval
no longer read the training data) and stores task.data resolved. `read_avatar_folder`
reads exactly FORMAT_VERSION and names meta.json with a fix otherwise.
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
from flashtalker_jax.render.camera import scale_intrinsics
from flashtalker_jax.utils.files import read_json_object, read_npz, sha256_file

FORMAT_VERSION = 3
FILES = ("config.json", "meta.json", "identity.npz", "view.npz", "track.npz", "state.npz", "flame")
POSE_KEYS = ("rotation", "neck_pose", "eyes_pose", "translation")   # what speak replays
TRACK_KEYS = ("expr", "jaw_pose") + POSE_KEYS
VIEW_KEYS = ("viewmat", "K", "width", "height")
REEXPORT = ("re-export it: `flashtalker adapt --resume` on its run folder (same --data and --out; "
            "a finished run only writes the avatar folder again), or re-run `flashtalker adapt`")


@dataclasses.dataclass(frozen=True)
class AvatarFolder:
    """A read avatar folder: meta {format_version, n_frames, n_cameras, audio_dim, camera,
    fps, flame_sha256}, shape (S,), static_offset (V, 3) or None, view {viewmat, K, width,
    height}, track {TRACK_KEYS (N, k), timesteps (N,)}, state {variable path: array}."""
    path: Path
    task_cfg: ml_collections.ConfigDict
    meta: dict
    shape: np.ndarray
    static_offset: np.ndarray | None
    view: dict[str, np.ndarray]
    track: dict[str, np.ndarray]
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


def load_flat_state(module: nnx.Module, state: dict[str, np.ndarray], file: Path, fix: str) -> nnx.Module:
    """Write a saved flat_state dict into `module` (returned): ModelFileError naming `file`
    when the saved variables' names or shapes are not exactly the module's."""
    from flashtalker_jax.train.state import key_path_str

    expected = flat_state(module)
    if set(expected) != set(state):
        raise ModelFileError(file, f"variables do not match this model ({len(set(expected) ^ set(state))} differ)",
                             fix)
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise ModelFileError(file, f"{key} has shape {state[key].shape}, expected {value.shape}", fix)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(module))
    nnx.update(module, jax.tree_util.tree_unflatten(treedef, [jnp.asarray(state[key_path_str(p)])
                                                              for p, _ in leaves]))
    return module


# ------------------------------------------------------------------ replay camera and track

def replay_view(seq, camera: int = 0) -> dict[str, np.ndarray]:
    """view.npz of a VHAP sequence: the first frame (in time) of `camera`."""
    row = seq.camera_rows(camera)[0]
    return {"viewmat": seq.w2c[row].astype(np.float32), "K": seq.K[row].astype(np.float32),
            "width": np.int32(seq.width), "height": np.int32(seq.height)}


def replay_track(seq, camera: int = 0) -> dict[str, np.ndarray]:
    """track.npz of a VHAP sequence: `camera`'s frames in time order (TRACK_KEYS, timesteps)."""
    rows = seq.camera_rows(camera)
    track = {k: np.asarray(seq.flame[k][rows], np.float32) for k in TRACK_KEYS}
    track["timesteps"] = np.asarray(seq.timesteps[rows], np.int64)
    return track


def view_at(view: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(viewmat (4, 4), K (3, 3)) of a view with K scaled to size x size pixels (square
    frames: the width sets the scale, as avatar/frames.load_frames does)."""
    K = scale_intrinsics(np.asarray(view["K"], np.float32), size / int(view["width"]))
    return np.asarray(view["viewmat"], np.float32), K


def flame_sha256(folder: Path) -> dict[str, str]:
    """{path relative to folder (posix): sha256 hex} of every file under a FLAME folder."""
    folder = Path(folder)
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return out


# ------------------------------------------------------------------ write / read

def write_avatar_folder(out_dir: Path, task_cfg, flame_src: Path, identity: dict[str, np.ndarray],
                        meta: dict, state: dict[str, np.ndarray], view: dict[str, np.ndarray],
                        track: dict[str, np.ndarray]) -> Path:
    """Write the folder (module docstring; meta gets format_version and flame_sha256, and is
    written last) and return its path."""
    from flashtalker_jax.utils.files import atomic_path, copy_tree_linking_duplicates

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "flame").exists():   # a previous export's copy: replaced, never mixed
        shutil.rmtree(out_dir / "flame")
    copy_tree_linking_duplicates(flame_src, out_dir / "flame")
    for name, arrays in (("identity.npz", identity), ("view.npz", view), ("track.npz", track),
                         ("state.npz", state)):
        with atomic_path(out_dir / name) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    (out_dir / "config.json").write_text(task_cfg.to_json_best_effort(indent=1))
    full = {"format_version": FORMAT_VERSION, **meta, "flame_sha256": flame_sha256(out_dir / "flame")}
    with atomic_path(out_dir / "meta.json") as tmp:
        tmp.write_text(json.dumps(full, indent=1))
    return out_dir


def read_avatar_folder(avatar_dir) -> AvatarFolder:
    """Every file of an avatar folder; ModelFileError naming the folder, the file or
    meta.json when a file is missing, a FLAME file differs from the one exported, or the
    format version is not FORMAT_VERSION (checked first: older folders lack files)."""
    avatar_dir = Path(avatar_dir)
    if not (avatar_dir / "meta.json").exists():
        raise ModelFileError(avatar_dir, "not an avatar folder: meta.json is missing",
                             "point --avatar at RUN/avatar written by `flashtalker adapt`")
    meta = _read_meta(avatar_dir / "meta.json")
    for name in FILES:
        if not (avatar_dir / name).exists():
            raise ModelFileError(avatar_dir, f"not an avatar folder: {name} is missing",
                                 "point --avatar at RUN/avatar written by `flashtalker adapt`")
    check_flame(avatar_dir, meta)
    task_cfg = ml_collections.ConfigDict(_read_json(avatar_dir / "config.json", "avatar task config"))
    identity = read_npz(avatar_dir / "identity.npz", "avatar identity", REEXPORT, keys=("shape",))
    view, track = read_replay(avatar_dir)
    state = read_npz(avatar_dir / "state.npz", "avatar model state", REEXPORT)
    return AvatarFolder(avatar_dir, task_cfg, meta, identity["shape"], identity.get("static_offset"),
                        view, track, state)


def read_replay(avatar_dir) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(view, track) of an avatar folder (module docstring), ModelFileError naming the file
    when one lacks a field."""
    avatar_dir = Path(avatar_dir)
    out = []
    for name, what, keys in (("view.npz", "replay camera", VIEW_KEYS),
                             ("track.npz", "replay pose track", TRACK_KEYS + ("timesteps",))):
        saved = read_npz(avatar_dir / name, what, REEXPORT, keys=keys)
        out.append({k: saved[k] for k in keys})
    return out[0], out[1]


def check_flame(avatar_dir: Path, meta: dict) -> None:
    """The folder's flame/ holds exactly the files meta.json's flame_sha256 lists (extra
    files are allowed), byte for byte; ModelFileError naming the first missing or changed one."""
    hashes = meta.get("flame_sha256")
    if not isinstance(hashes, dict) or not hashes:
        raise ModelFileError(avatar_dir / "meta.json", "no flame_sha256 (the FLAME files' hashes)",
                             REEXPORT)
    found = flame_sha256(avatar_dir / "flame")
    for name, digest in hashes.items():
        if name not in found:
            raise ModelFileError(avatar_dir / "flame" / name, "FLAME file of the avatar is missing",
                                 "copy the whole avatar folder, flame/ included, or " + REEXPORT)
        if found[name] != digest:
            raise ModelFileError(avatar_dir / "flame" / name, "differs from the FLAME file the avatar "
                                 f"was exported with (sha256 {found[name][:12]}..., expected {digest[:12]}...)",
                                 "restore the original file, or " + REEXPORT)


def restore_state(module: nnx.Module, folder: AvatarFolder, skip: tuple[str, ...] = ()) -> None:
    """Write the folder's saved variables into `module`, whose variables must be exactly the
    saved ones outside the top-level attributes `skip` (ModelFileError naming state.npz)."""
    stored = {k: v for k, v in folder.state.items() if k.split("/")[0] not in skip}
    load_flat_state(module, stored, folder.path / "state.npz", REEXPORT)


def read_meta(avatar_dir) -> dict:
    """meta.json of an avatar folder (checked as read_avatar_folder checks it)."""
    return _read_meta(Path(avatar_dir) / "meta.json")


def _read_json(path: Path, what: str) -> dict:
    """A JSON object of the avatar folder, or ModelFileError naming the file."""
    return read_json_object(path, what, REEXPORT)


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
                                   f"flashtalker reads {FORMAT_VERSION}; version 3 stores the camera, "
                                   "pose track and FLAME hashes so the folder needs no training data)",
                             REEXPORT)
    return meta
