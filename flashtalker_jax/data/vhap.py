"""VHAP tracker export folders: write (synthetic data) and read (synthetic or real).

Layout (what VHAP's `export_as_nerf_dataset` writes, plus our audio files):
    images/00000_00.png            frame 0 from camera 0 (RGB)
    fg_masks/00000_00.png          foreground mask (8-bit)
    flame_param/00000.npz          rotation (3,), translation (3,), neck_pose (3,),
                                   jaw_pose (3,), eyes_pose (6,), expr (n_expr,),
                                   shape (n_shape,), static_offset (V, 3)
    canonical_flame_param.npz      shape, expr, static_offset of the canonical pose
    transforms.json                all frames; transforms_{train,val,test}.json: splits
        per frame: file_path, fg_mask_path, flame_param_path, timestep_index,
        camera_index, transform_matrix (camera-to-world, OpenGL axes), fl_x, fl_y, cx,
        cy, w, h; top level: the same intrinsics, fps and audio_path (our extension)
    audio.wav (16 kHz), phonemes.json [{phoneme, start, end}] (synthetic data only)
    head_masks/00000_00.png        head-and-neck mask (`flashtalker track`; read by
                                   load_head_mask for real-footage avatars)

`read_vhap_index` reads the folder's metadata only (frames, timesteps, cameras, fps, audio
path, FLAME parameter paths, splits; no images, parameters or audio): every reader of the
format starts from it (`read_vhap` here, the motion dataset, the motion evaluation).
`read_vhap` adds the FLAME parameters, audio and lazily read frames.

Per-frame arrays written with a leading batch axis of 1 (as VHAP saves them) are squeezed.
Cameras are returned in OpenCV axes (x right, y down, z forward): c2w[:3, 1:3] *= -1.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import zipfile
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from flashtalker_jax.audio.io import FPS, SAMPLE_RATE
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path

FLAME_FRAME_KEYS = ("rotation", "translation", "neck_pose", "jaw_pose", "eyes_pose", "expr")
FLAME_FRAME_SIZES = {"rotation": 3, "translation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6}
SPLITS = ("train", "val", "test")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
AUDIO_FILE = "audio.wav"  # the audio when transforms.json names none
CANONICAL_FILE = "canonical_flame_param.npz"
HEAD_MASK_DIR = "head_masks"  # head-and-neck masks of `flashtalker track` (not a VHAP file)
MAX_SHAPE = 300  # shape components of every FLAME release (flame.loader.N_SHAPE_FILE)


def has_head_masks(folder: str | Path) -> bool:
    """Whether a VHAP folder holds `flashtalker track`'s head masks (HEAD_MASK_DIR)."""
    return (Path(folder) / HEAD_MASK_DIR).is_dir()


def frame_stem(timestep: int, camera: int = 0) -> str:
    return f"{timestep:05d}_{camera:02d}"


# ----------------------------------------------------------------------------- writing

def write_png(path: Path, array: np.ndarray, compress_level: int = 6) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", compress_level=compress_level)


def write_frame(root: Path, timestep: int, image: np.ndarray, mask: np.ndarray,
                flame: Mapping[str, np.ndarray], compress_level: int = 6) -> dict:
    """Write one camera-0 frame (uint8 image (H, W, 3), mask (H, W)) and its FLAME params;
    returns the frame's paths for transforms.json."""
    stem = frame_stem(timestep)
    record = {"file_path": f"images/{stem}.png", "fg_mask_path": f"fg_masks/{stem}.png",
              "flame_param_path": f"flame_param/{timestep:05d}.npz"}
    write_png(root / record["file_path"], image, compress_level)
    write_png(root / record["fg_mask_path"], mask, compress_level)
    with atomic_path(root / record["flame_param_path"]) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v, np.float32) for k, v in flame.items()})
    return record


def camera_record(K: np.ndarray, c2w_opengl: np.ndarray, width: int, height: int) -> dict:
    fl_x, fl_y, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    return {"fl_x": fl_x, "fl_y": fl_y, "cx": cx, "cy": cy, "w": int(width), "h": int(height),
            "camera_angle_x": 2 * float(np.arctan(width / (2 * fl_x))),
            "camera_angle_y": 2 * float(np.arctan(height / (2 * fl_y))),
            "transform_matrix": np.asarray(c2w_opengl, float).tolist()}


def write_transforms(root: Path, frames: Sequence[dict], splits: Mapping[str, Sequence[int]],
                     fps: float, audio_path: str | None = AUDIO_FILE, extra: Mapping | None = None) -> None:
    """transforms.json (all frames) and transforms_{split}.json, frames given in timestep order;
    `extra`: more top-level fields (e.g. the tracker's crop box in the source video)."""
    top = {k: frames[0][k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")}
    top.update({"fps": float(fps), "audio_path": audio_path, **(extra or {})})
    by_timestep = {f["timestep_index"]: f for f in frames}

    def dump(name: str, chosen: list[dict]) -> None:
        payload = {**top, "timestep_indices": sorted({f["timestep_index"] for f in chosen}),
                   "camera_indices": sorted({f["camera_index"] for f in chosen}), "frames": chosen}
        with atomic_path(root / name) as tmp:
            tmp.write_text(json.dumps(payload, indent=1))

    dump("transforms.json", list(frames))
    for split in SPLITS:
        dump(f"transforms_{split}.json", [by_timestep[t] for t in splits.get(split, ())])


# ----------------------------------------------------------------------------- index

@dataclasses.dataclass(frozen=True)
class VhapIndex:
    """What transforms*.json say about a VHAP folder; checks that the listed FLAME parameter
    and mask files exist, reads none of them (images are not required at all).

    N = frames listed in transforms.json (one per timestep x camera):
      timesteps (N,) int, cameras (N,) int, K (N, 3, 3), c2w (N, 4, 4) OpenCV axes,
      flame_paths / image_paths / mask_paths: (N,) per frame (a mask path may be None),
      audio_path: the audio file (None when transforms.json names none and audio.wav is
      absent), canonical_path: canonical_flame_param.npz or None,
      splits: {name: (n,) frame rows} for each transforms_{name}.json present.
    """
    root: Path
    timesteps: np.ndarray
    cameras: np.ndarray
    K: np.ndarray
    c2w: np.ndarray
    width: int
    height: int
    fps: float
    flame_paths: tuple[Path, ...]
    image_paths: tuple[Path | None, ...]
    mask_paths: tuple[Path | None, ...]
    audio_path: Path | None
    canonical_path: Path | None
    splits: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.flame_paths)

    @property
    def w2c(self) -> np.ndarray:
        return np.linalg.inv(self.c2w)

    def camera_rows(self, camera: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """Indices of one camera's frames in time order, among `rows` (default: all frames).
        `camera` defaults to the camera of the first of those rows."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        if camera is None and rows.size:
            camera = int(self.cameras[rows[0]])
        picked = rows[self.cameras[rows] == camera]
        if picked.size == 0:
            raise InputFileError(self.root, f"no frames of camera {camera}")
        return picked[np.argsort(self.timesteps[picked], kind="stable")]

    def split_timesteps(self, split: str) -> np.ndarray:
        """Timesteps of a split's frames (empty when the folder has no such split)."""
        return self.timesteps[self.splits.get(split, np.zeros(0, np.int64))]


def read_vhap_index(root: str | os.PathLike, fps: float | None = None) -> VhapIndex:
    """The metadata of a VHAP-format folder; `fps` overrides the folder's (default FPS)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, "dataset folder not found")
    path = root / "transforms.json"
    meta = _load_json(path)
    frames = [_checked_frame(f, i, path) for i, f in enumerate(_frame_list(meta, path))]
    if not frames:
        raise InputFileError(path, "lists no frames")
    _check_files_present(root, frames)
    cams = [_camera(f, i, meta, path) for i, f in enumerate(frames)]
    widths, heights = {c[2] for c in cams}, {c[3] for c in cams}
    if len(widths) != 1 or len(heights) != 1:
        raise InputFileError(root / "transforms.json", f"frames have different sizes {widths} x {heights}")
    canonical = root / CANONICAL_FILE
    return VhapIndex(
        root=root, timesteps=np.array([f["timestep_index"] for f in frames], np.int64),
        cameras=np.array([f["camera_index"] for f in frames], np.int64),
        K=np.stack([c[0] for c in cams]), c2w=np.stack([c[1] for c in cams]),
        width=widths.pop(), height=heights.pop(), fps=float(fps or _fps(meta, path)),
        flame_paths=tuple(root / f["flame_param_path"] for f in frames),
        image_paths=tuple(root / f["file_path"] if f.get("file_path") else None for f in frames),
        mask_paths=tuple(root / f["fg_mask_path"] if f.get("fg_mask_path") else None for f in frames),
        audio_path=_audio_path(root, meta), canonical_path=canonical if canonical.is_file() else None,
        splits=_read_splits(root, frames))


# What to do about a malformed transforms*.json.
TRANSFORMS_FIX = "fix the entry, or re-export the folder with VHAP export_as_nerf_dataset"


def _frame_list(meta, path: Path) -> list:
    """The `frames` list of a transforms*.json (empty when absent)."""
    if not isinstance(meta, dict):
        raise InputFileError(path, f"top level is a {type(meta).__name__}, expected an object with 'frames'",
                             TRANSFORMS_FIX)
    frames = meta.get("frames")
    if frames is None:
        return []
    if not isinstance(frames, list):
        raise InputFileError(path, f"'frames' is a {type(frames).__name__}, expected a list of frame objects",
                             TRANSFORMS_FIX)
    return frames


def _integer(value, what: str, path: Path) -> int:
    """A non-negative integer field (an integral float such as 3.0 is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputFileError(path, f"{what} is {value!r}, expected an integer >= 0", TRANSFORMS_FIX)
    return value


def _inside(value, what: str, path: Path) -> str:
    """A path relative to the dataset folder that stays inside it (no absolute path, no
    '..' above the folder), normalised; a dataset never reaches outside its folder."""
    if not isinstance(value, str) or not value.strip():
        raise InputFileError(path, f"{what} is {value!r}, expected a path relative to the folder", TRANSFORMS_FIX)
    norm = posixpath.normpath(value.replace("\\", "/"))
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../") or (len(norm) > 1 and norm[1] == ":"):
        raise InputFileError(path, f"{what} {value!r} points outside the dataset folder",
                             "paths in transforms.json are relative to its folder and stay inside it")
    return norm


def _checked_frame(frame, i: int, path: Path, required=("timestep_index", "flame_param_path")) -> dict:
    """One frame of transforms*.json with its keys checked: timestep_index (and camera_index)
    integers, the `required` keys present, every path inside the folder (normalised)."""
    where = f"frames[{i}]"
    if not isinstance(frame, dict):
        raise InputFileError(path, f"{where} is a {type(frame).__name__}, expected an object", TRANSFORMS_FIX)
    out = dict(frame)
    for key in required:
        if key not in frame or frame[key] is None:
            raise InputFileError(path, f"{where} has no '{key}'", TRANSFORMS_FIX)
    out["timestep_index"] = _integer(frame["timestep_index"], f"{where} 'timestep_index'", path)
    out["camera_index"] = _integer(frame.get("camera_index", 0), f"{where} 'camera_index'", path)
    for key in ("flame_param_path", "file_path", "fg_mask_path"):
        if frame.get(key) is not None:
            out[key] = _inside(frame[key], f"{where} {key}", path)
    return out


def _fps(meta: dict, path: Path) -> float:
    value = meta.get("fps", FPS)
    if value is None:
        return FPS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise InputFileError(path, f"'fps' is {value!r}, expected a positive number", TRANSFORMS_FIX)
    return float(value)


def _audio_path(root: Path, meta: dict) -> Path | None:
    if meta.get("audio_path") is not None:
        _inside(meta["audio_path"], "audio_path", root / "transforms.json")
    path = root / (meta.get("audio_path") or AUDIO_FILE)
    if path.is_file():
        return path
    if meta.get("audio_path"):
        raise InputFileError(path, "audio file named in transforms.json is missing")
    return None


# ----------------------------------------------------------------------------- reading

@dataclasses.dataclass(frozen=True)
class VhapSequence(VhapIndex):
    """A VHAP-format folder: its index plus the FLAME parameters and audio, frames read lazily.

    Adds to VhapIndex: flame {key: (N, size)} per-frame params, shape (n_shape,),
    static_offset (V, 3) | None, audio (S,) float32 at sample_rate or None, phonemes.
    """
    flame: dict[str, np.ndarray]
    shape: np.ndarray
    static_offset: np.ndarray | None
    audio: np.ndarray | None
    sample_rate: int
    phonemes: list[tuple[str, float, float]] | None

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 (alpha dropped, greyscale expanded)."""
        return _read_image(self.image_paths[index], self.width, self.height, "RGB")

    def load_mask(self, index: int) -> np.ndarray:
        """(H, W) uint8 foreground mask; all 255 when the folder has no masks."""
        path = self.mask_paths[index]
        if path is None:
            return np.full((self.height, self.width), 255, np.uint8)
        return _read_image(path, self.width, self.height, "L")

    def load_head_mask(self, index: int) -> np.ndarray:
        """(H, W) uint8 head-and-neck mask (head_masks/, written by `flashtalker track`: the
        person above the tracked neck seam), named like the frame's image."""
        path = self.root / HEAD_MASK_DIR / self.image_paths[index].name
        if not path.is_file():
            raise InputFileError(path, "head mask missing (a real-footage avatar trains on the head "
                                       "region only)", "re-run `flashtalker track` on the video, which "
                                       "writes head_masks/, or use --config.task.mask_source=fg")
        return _read_image(path, self.width, self.height, "L")

    def frame_params(self, index: int) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in self.flame.items()}

    def audio_for_frames(self, start: int, stop: int) -> np.ndarray:
        """Samples covering timesteps [start, stop) -> ((stop - start) * sr / fps,) float32."""
        if self.audio is None:
            raise InputFileError(self.root, "this folder has no audio.wav")
        per_frame = self.sample_rate / self.fps
        a, b = int(round(start * per_frame)), int(round(stop * per_frame))
        chunk = self.audio[a:b]
        return np.pad(chunk, (0, (b - a) - chunk.shape[0]))


def _read_image(path: Path, width: int, height: int, mode: str) -> np.ndarray:
    if not path.is_file():
        raise InputFileError(path, "image listed in transforms.json is missing")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot decode image ({exc})", "re-export the frame") from exc
    if array.shape[:2] != (height, width):
        raise InputFileError(path, f"image is {array.shape[1]}x{array.shape[0]} but transforms.json "
                                   f"says {width}x{height}")
    return array


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise InputFileError(path, "file not found", "is this a VHAP export folder?")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # json.JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise InputFileError(path, f"cannot parse JSON ({exc})", "is the file complete?") from exc


def _camera(frame: dict, i: int, top: dict, path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    try:
        get = lambda k: frame.get(k, top.get(k))  # noqa: E731 - per-frame value, else top level
        K = np.array([[get("fl_x"), 0, get("cx")], [0, get("fl_y"), get("cy")], [0, 0, 1]], np.float64)
        c2w = np.asarray(frame["transform_matrix"], np.float64) @ OPENGL_TO_OPENCV
        return K, c2w, int(get("w")), int(get("h"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(path, f"frames[{i}] ({frame.get('file_path')}) has an incomplete camera "
                                   f"({type(exc).__name__}: {exc})", "each frame needs transform_matrix (4x4) and "
                                   "fl_x, fl_y, cx, cy, w, h (per frame or at the top level)") from exc


NPZ_FIX = "the file is truncated or not an .npz: re-export it"


def load_npz(path: Path, what: str = "FLAME parameters", keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The float32 arrays of an .npz file (only `keys` when given, each required), with one
    InputFileError for a missing, truncated or non-npz file or a missing key."""
    if not path.is_file():
        raise InputFileError(path, f"{what} file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            names = list(data.files) if keys is None else list(keys)
            missing = [k for k in names if k not in data.files]
            if missing:
                raise InputFileError(path, f"missing key{'s' if len(missing) > 1 else ''} "
                                           f"{', '.join(repr(k) for k in missing)} (has {sorted(data.files)})",
                                     f"{what} files hold {', '.join(names)}")
            return {k: np.asarray(data[k], np.float32) for k in names}
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputFileError(path, f"cannot read {what} ({type(exc).__name__}: {exc})", NPZ_FIX) from exc


def frame_vector(path: Path, key: str, value: np.ndarray, size: int | None = None) -> np.ndarray:
    """A per-frame FLAME vector stored as (n,) or, as VHAP saves it, (1, n) -> (n,)."""
    vector = value[0] if value.ndim == 2 and value.shape[0] == 1 else value
    if vector.ndim != 1 or (size is not None and vector.shape[0] != size):
        expected = f"({size},) or (1, {size})" if size is not None else "(n,) or (1, n)"
        raise InputFileError(path, f"key '{key}' has shape {value.shape}, expected {expected}", NPZ_FIX)
    return vector


def shape_vector(path: Path, value: np.ndarray) -> np.ndarray:
    """A FLAME `shape` array: (n_shape,) or (1, n_shape), 1 <= n_shape <= MAX_SHAPE -> (n_shape,)."""
    vector = value[0] if value.ndim == 2 and value.shape[0] == 1 else value
    if vector.ndim != 1 or not 1 <= vector.shape[0] <= MAX_SHAPE:
        raise InputFileError(path, f"key 'shape' has shape {value.shape}, expected (n_shape,) or (1, n_shape) "
                                   f"with 1 <= n_shape <= {MAX_SHAPE}",
                             "one identity's FLAME shape coefficients: re-export the tracking")
    return vector


def static_offset_array(path: Path, value: np.ndarray) -> np.ndarray:
    """A `static_offset`: (V, 3) or (1, V, 3) -> (V, 3)."""
    offset = value[0] if value.ndim == 3 and value.shape[0] == 1 else value
    if offset.ndim != 2 or offset.shape[1] != 3:
        raise InputFileError(path, f"key 'static_offset' has shape {value.shape}, expected (V, 3) or (1, V, 3)",
                             NPZ_FIX)
    return offset


def _load_flame(path: Path) -> dict[str, np.ndarray]:
    params = load_npz(path)
    missing = [k for k in (*FLAME_FRAME_KEYS, "shape") if k not in params]
    if missing:
        raise InputFileError(path, f"missing FLAME keys {missing}", "re-export the frame's FLAME parameters")
    out = {k: v[0] if v.ndim > 1 and v.shape[0] == 1 and k != "static_offset" else v
           for k, v in params.items()}
    for key in FLAME_FRAME_KEYS:
        out[key] = frame_vector(path, key, params[key], FLAME_FRAME_SIZES.get(key))
    out["shape"] = shape_vector(path, params["shape"])
    if "static_offset" in params:
        out["static_offset"] = static_offset_array(path, params["static_offset"])
    return out


def read_vhap(root: str | os.PathLike, sample_rate: int = SAMPLE_RATE, fps: float | None = None) -> VhapSequence:
    """Read a VHAP-format folder (frames lazily); checks listed files, counts and audio length.

    Audio (audio.wav, or `audio_path` in transforms.json) is optional; when present it is
    loaded at `sample_rate` (other rates are resampled with an AudioConversionWarning) and
    must cover every frame.
    """
    index = read_vhap_index(root, fps)
    root = index.root
    _check_images_present(index)
    params = {p: _load_flame(p) for p in sorted(set(index.flame_paths))}
    flame = _stack_flame([params[p] for p in index.flame_paths], list(index.flame_paths))
    first = params[min(params)]
    static_offset = first.get("static_offset")
    shape = first["shape"]
    if index.canonical_path is not None:
        canon = _load_flame_canonical(index.canonical_path)
        shape = canon.get("shape", shape)
        static_offset = canon.get("static_offset", static_offset)
    audio = _load_audio_checked(index, sample_rate)
    listed = {f.name: getattr(index, f.name) for f in dataclasses.fields(VhapIndex)}
    return VhapSequence(**listed, flame=flame, shape=shape, static_offset=static_offset,
                        audio=audio, sample_rate=sample_rate, phonemes=_read_phonemes(root))


def _absent(root: Path, listed: list[str | None], key: str) -> None:
    absent = [name for name in listed if not name or not (root / name).is_file()]
    if absent:
        raise InputFileError(root / "transforms.json",
                             f"{len(absent)} of {len(listed)} frames have no {key} file, first {absent[0]}",
                             "re-export the folder or remove those frames from transforms.json")


def _check_images_present(index: VhapIndex) -> None:
    _absent(index.root, [p and p.relative_to(index.root).as_posix() for p in index.image_paths], "file_path")


def _check_files_present(root: Path, frames: list[dict]) -> None:
    """FLAME parameter files and masks listed, and as many parameter files as listed."""
    _absent(root, [f.get("flame_param_path") for f in frames], "flame_param_path")
    masks = [f for f in frames if f.get("fg_mask_path")]
    absent = [f["fg_mask_path"] for f in masks if not (root / f["fg_mask_path"]).is_file()]
    if absent:
        raise InputFileError(root / "transforms.json", f"{len(absent)} listed masks are missing, first {absent[0]}")
    on_disk = len(list((root / "flame_param").glob("*.npz"))) if (root / "flame_param").is_dir() else 0
    listed = len({f["flame_param_path"] for f in frames})
    if on_disk and on_disk != listed:
        raise InputFileError(root / "flame_param", f"{on_disk} parameter files but transforms.json lists {listed}",
                             "frames and FLAME parameters come from different exports?")


def _stack_flame(per_frame: list[dict], paths: list[Path]) -> dict[str, np.ndarray]:
    out = {}
    for key in FLAME_FRAME_KEYS:
        expected = per_frame[0][key].shape
        for path, params in zip(paths, per_frame):
            if params[key].shape != expected:
                raise InputFileError(path, f"{key} has shape {params[key].shape} but {paths[0].name} "
                                           f"has {expected}", "frames come from different exports?")
        out[key] = np.stack([p[key] for p in per_frame])
    return out


def _load_flame_canonical(path: Path) -> dict[str, np.ndarray]:
    params = load_npz(path, "canonical FLAME parameters")
    out = {k: v[0] if v.ndim >= 2 and v.shape[0] == 1 else v for k, v in params.items()}
    if "shape" in params:
        out["shape"] = shape_vector(path, params["shape"])
    if "static_offset" in params:
        out["static_offset"] = static_offset_array(path, params["static_offset"])
    return out


def _load_audio_checked(index: VhapIndex, sample_rate: int) -> np.ndarray | None:
    from flashtalker_jax.audio import load_audio

    if index.audio_path is None:
        return None
    audio = load_audio(index.audio_path, sample_rate)
    fps = index.fps
    n_frames = int(index.timesteps.max()) + 1
    needed = n_frames / fps
    have = audio.shape[0] / sample_rate
    # Half a frame of slack: frame counts are rounded from the audio duration.
    if have < needed - 0.5 / fps:
        raise InputFileError(index.audio_path, f"audio is {have:.3f} s but {n_frames} frames at {fps:g} fps "
                                               f"need {needed:.3f} s", "the audio must cover the whole video")
    return audio


def _read_splits(root: Path, frames: list[dict]) -> dict[str, np.ndarray]:
    index = {(f["timestep_index"], f["camera_index"]): i for i, f in enumerate(frames)}
    splits = {}
    for split in SPLITS:
        path = root / f"transforms_{split}.json"
        if not path.is_file():
            continue
        chosen = []
        for i, f in enumerate(_frame_list(_load_json(path), path)):
            f = _checked_frame(f, i, path, required=("timestep_index",))
            key = (f["timestep_index"], f["camera_index"])
            if key not in index:
                raise InputFileError(path, f"frame {f.get('file_path')} is not in transforms.json")
            chosen.append(index[key])
        splits[split] = np.array(chosen, np.int64)
    return splits


def _read_phonemes(root: Path) -> list[tuple[str, float, float]] | None:
    path = root / "phonemes.json"
    if not path.is_file():
        return None
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise InputFileError(path, f"top level is a {type(entries).__name__}, expected a list of "
                                   "{phoneme, start, end}", "re-run `flashtalker data synth` or delete it")
    out = []
    for i, p in enumerate(entries):
        for key in ("phoneme", "start", "end"):
            if not isinstance(p, dict) or key not in p:
                raise InputFileError(path, f"entry {i} has no '{key}'", "re-run `flashtalker data synth` or delete it")
        try:
            out.append((str(p["phoneme"]), float(p["start"]), float(p["end"])))
        except (TypeError, ValueError) as exc:
            raise InputFileError(path, f"entry {i} has a non-numeric start or end ({exc})") from exc
    return out


def identity_folders(dataset: str | os.PathLike) -> list[Path]:
    """Sub-folders holding transforms.json, sorted by name (a single identity folder works too)."""
    dataset = Path(dataset)
    if (dataset / "transforms.json").is_file():
        return [dataset]
    found = sorted(p for p in dataset.iterdir() if (p / "transforms.json").is_file()) if dataset.is_dir() else []
    if not found:
        raise InputFileError(dataset, "holds no identity folders (sub-folders with transforms.json)",
                             "create one with `flashtalker data synth`")
    return found
