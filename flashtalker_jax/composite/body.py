"""The identity's body loop: the recorded frames that new speech is composited onto.

`speak` renders only the head; the torso, the background and (for a crop smaller than the
frame) the rest of the person's frame come from the recording, replayed forward and
backward (composite/schedule.pingpong_indices, the same frames as the replayed head pose).
They are stored in the avatar folder so that speak needs nothing else and the folder
stays self-contained when copied (the VHAP folder and the source video may be gone).

Folder (write_body_loop -> read_body_loop):
    crop.mp4    the N face crops (S x S) as H.264, no audio
    source.mp4  the same N frames at source resolution, only when the crop box is not the
                whole frame (then the output is the source frame with the crop pasted back,
                composite/paste.py); odd sides are padded by one edge pixel for yuv420p
    loop.npz    frame_indices (N,) timesteps in the VHAP folder, head_masks (N, S, ceil(S/8))
                np.packbits of the (N, S, S) head masks, crop_size, box (x0, y0, side),
                source_size (W, H), fps
    body.json   format_version, counts, sha256 of each file (written last: a folder with
                body.json is complete)

The frames are the last `loop_frames` of the train split before the test split begins, so
the loop ends where the held-out frames start. Frames the tracker left out of the train
split (untracked) are skipped: a one-frame jump beats a frame whose head mask is wrong.

Lossy video is acceptable here: these frames are only the background for NEW audio (there
is no ground truth to match), and at a high-quality crf the H.264 error (a few levels) is
far below what the inpainter and paste-back change anyway; evaluation never reads them, it
compares against the VHAP folder's ground-truth PNGs. PNGs of a 1280x720 loop would be
~30x larger. Head masks are stored losslessly (bit-packed): they decide which pixels are
replaced, and a compressed mask would flicker at the seam.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from flashtalker_jax.composite.schedule import pingpong_indices
from flashtalker_jax.data import vhap
from flashtalker_jax.errors import InputFileError, ModelFileError
from flashtalker_jax.utils.files import atomic_path, read_npz, sha256_file
from flashtalker_jax.video import iter_frames, mp4_writer

FORMAT_VERSION = 1
CROP_VIDEO = "crop.mp4"
SOURCE_VIDEO = "source.mp4"
LOOP_ARRAYS = "loop.npz"
MANIFEST = "body.json"
REBUILD = "rebuild the body loop from the tracked VHAP folder (composite.body.write_body_loop)"
LOOP_KEYS = ("frame_indices", "head_masks", "crop_size", "box", "source_size", "fps")


@dataclasses.dataclass(frozen=True)
class BodyLoop:
    """A decoded body loop. N frames, crop size S, source frame (H, W):
    crops (N, S, S, 3) uint8; head_masks (N, S, S) bool; sources (N, H, W, 3) uint8, or None
    when the crop box is the whole frame (no paste-back); frame_indices (N,) VHAP timesteps;
    box (3,) float64 (x0, y0, side) in source pixels; source_size (W, H); fps."""
    crops: np.ndarray
    head_masks: np.ndarray
    sources: np.ndarray | None
    frame_indices: np.ndarray
    box: np.ndarray
    source_size: tuple[int, int]
    fps: float

    def __len__(self) -> int:
        return len(self.frame_indices)

    def schedule(self, start: int, count: int) -> np.ndarray:
        """Loop frames of output frames [start, start + count) (ping-pong, the schedule
        to_flame_params replays the head pose with: give it pose_track_for_loop's track)."""
        return pingpong_indices(start, count, len(self))


def pose_track_for_loop(track: dict[str, np.ndarray], frame_indices: np.ndarray) -> dict[str, np.ndarray]:
    """The avatar's replay pose track (avatar/export track.npz: per-frame arrays + timesteps)
    cut to the body loop's frames, in loop order. Replaying it with to_flame_params picks,
    at every output frame, the pose of the very frame the body loop shows there (both use
    pingpong_indices over the same N frames), so the head sits on its own neck."""
    timesteps = np.asarray(track["timesteps"])
    row_of = {int(t): i for i, t in enumerate(timesteps)}
    missing = [int(t) for t in frame_indices if int(t) not in row_of]
    if missing:
        raise ModelFileError("track.npz", f"the body loop's frames {missing[:5]} are not in the replay pose track",
                             "the body loop and the avatar come from different trackings: " + REBUILD)
    rows = np.array([row_of[int(t)] for t in frame_indices], np.int64)
    return {k: np.asarray(v)[rows] for k, v in track.items()}


# ----------------------------------------------------------------------------- choosing

def loop_rows(index: vhap.VhapIndex, loop_frames: int) -> np.ndarray:
    """Rows of `index` (camera 0, time order): the last `loop_frames` train frames before
    the first test frame (all of them when there are fewer)."""
    if loop_frames < 1:
        raise ValueError(f"loop_frames must be >= 1, got {loop_frames}")
    train = index.splits.get("train")
    if train is None or train.size == 0:
        raise InputFileError(index.root / "transforms_train.json", "no train split: the body loop is cut from it",
                             "re-run `flashtalker track`, which writes the splits")
    rows = index.camera_rows(rows=train)
    test = index.split_timesteps("test")
    if test.size:
        rows = rows[index.timesteps[rows] < test.min()]
    if rows.size == 0:
        raise InputFileError(index.root / "transforms_train.json", "no train frame precedes the test split")
    return rows[-loop_frames:]


def crop_geometry(meta: dict, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(box, source_size) from transforms.json; a folder without a crop box (synthetic data)
    is its own source: box (0, 0, S), source S x S."""
    if meta.get("crop_box_xy_side") is None:
        return np.array([0.0, 0.0, float(size)]), (size, size)
    box = np.asarray(meta["crop_box_xy_side"], np.float64)
    width, height = (int(v) for v in meta["source_size"])
    return box, (width, height)


def needs_paste(box: np.ndarray, source_size: tuple[int, int]) -> bool:
    """False when the crop is the whole (square) source frame, up to float noise."""
    width, height = source_size
    return not (width == height and np.allclose(box, [0.0, 0.0, width], atol=1e-3))


def resolve_source_video(vhap_dir: Path, named: str | None, given: str | os.PathLike | None) -> Path:
    """The source video: the argument, else transforms.json's source_video (absolute, or
    relative to the VHAP folder's parent or to the working directory)."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise InputFileError(path, "source video not found", "pass the video the folder was tracked from")
        return path
    if not named:
        raise InputFileError(vhap_dir / "transforms.json", "names no source_video, and none was given",
                             "pass source_video= (the video the folder was tracked from)")
    candidates = [Path(named)] if Path(named).is_absolute() else [vhap_dir.parent / named, Path.cwd() / named]
    for path in candidates:
        if path.is_file():
            return path
    raise InputFileError(named, f"source video named in {vhap_dir / 'transforms.json'} not found "
                                f"(looked at {', '.join(str(p) for p in candidates)})",
                         "pass source_video= with its current path")


# ----------------------------------------------------------------------------- writing

def _read_png(path: Path, mode: str, size: int) -> np.ndarray:
    if not path.is_file():
        raise InputFileError(path, "file missing", "re-run `flashtalker track` (it writes images/ and head_masks/)")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read image ({exc})") from exc
    if array.shape[:2] != (size, size):
        raise InputFileError(path, f"is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}")
    return array


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd side with its edge pixel (H.264 yuv420p needs even sides)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frame


def _decoded(video: Path):
    """iter_frames, with imageio-ffmpeg's errors for an undecodable file as InputFileError."""
    try:
        yield from iter_frames(video)
    except (OSError, RuntimeError) as exc:
        raise InputFileError(video, f"cannot decode video ({exc})") from exc


def _write_sources(video: Path, out: Path, timesteps: np.ndarray, source_size: tuple[int, int],
                   fps: float, crf: int) -> None:
    """Stream the source video and encode the frames numbered `timesteps` (frame t of the
    video is timestep t, as import_video numbers them); only one frame is held at a time."""
    wanted, last = set(int(t) for t in timesteps), int(timesteps.max())
    width, height = source_size
    written = seen = 0
    with mp4_writer(out, width + width % 2, height + height % 2, fps, crf=crf) as write:
        for t, frame in enumerate(_decoded(video)):
            seen = t + 1
            if frame.shape[:2] != (height, width):
                raise InputFileError(video, f"is {frame.shape[1]}x{frame.shape[0]} but the folder was tracked "
                                            f"from a {width}x{height} video", "pass the video it was tracked from")
            if t in wanted:
                write(_even(frame))
                written += 1
            if t >= last:
                break
        if written != len(wanted):
            raise InputFileError(video, f"has {seen} frames, the body loop needs frame {last}",
                                 "pass the video the folder was tracked from")


def write_body_loop(vhap_dir: str | os.PathLike, out_dir: str | os.PathLike, loop_frames: int, crf: int,
                    source_video: str | os.PathLike | None = None, head_masks: np.ndarray | None = None) -> dict:
    """Write the body loop of a tracked VHAP folder into `out_dir`; returns body.json's content.
    `head_masks` (N, S, S) bool for the loop's frames (loop_rows order) replaces the tracked
    head_masks/: adapt-body stores the frames' own head as the avatar draws it there."""
    vhap_dir, out_dir = Path(vhap_dir), Path(out_dir)
    index = vhap.read_vhap_index(vhap_dir)
    meta = json.loads((vhap_dir / "transforms.json").read_text())   # parsed fine just above
    rows = loop_rows(index, loop_frames)
    size = index.width
    if index.height != size:
        raise InputFileError(vhap_dir / "transforms.json", f"frames are {index.width}x{index.height}, the body "
                                                           "loop needs the tracker's square crops")
    box, source_size = crop_geometry(meta, size)
    paste = needs_paste(box, source_size)
    # Resolve the video before any encoding: a missing one fails fast, not after the crops.
    video = resolve_source_video(vhap_dir, meta.get("source_video"), source_video) if paste else None
    timesteps = index.timesteps[rows]
    if head_masks is None:
        masks = np.stack([_read_png(vhap_dir / vhap.HEAD_MASK_DIR / index.image_paths[r].name, "L", size) > 127
                          for r in rows])
    else:
        masks = np.asarray(head_masks, bool)
        if masks.shape != (len(rows), size, size):
            raise ValueError(f"head_masks must be {(len(rows), size, size)} for this loop, got {masks.shape}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)          # incomplete until rewritten last
    with mp4_writer(out_dir / CROP_VIDEO, size, size, index.fps, crf=crf) as write:
        for r in rows:
            write(_read_png(index.image_paths[r], "RGB", size))
    if paste:
        _write_sources(video, out_dir / SOURCE_VIDEO, timesteps, source_size, index.fps, crf)
    else:
        (out_dir / SOURCE_VIDEO).unlink(missing_ok=True)  # a stale one from an earlier write
    with atomic_path(out_dir / LOOP_ARRAYS) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, frame_indices=timesteps.astype(np.int64), head_masks=np.packbits(masks, axis=-1),
                     crop_size=np.int64(size), box=box, source_size=np.array(source_size, np.int64),
                     fps=np.float64(index.fps))
    files = [CROP_VIDEO, LOOP_ARRAYS] + ([SOURCE_VIDEO] if paste else [])
    manifest = {"format_version": FORMAT_VERSION, "frames": int(len(rows)), "crop_size": size,
                "source_size": list(source_size), "has_source": paste, "fps": float(index.fps), "crf": int(crf),
                "first_timestep": int(timesteps[0]), "last_timestep": int(timesteps[-1]),
                "sha256": {name: sha256_file(out_dir / name) for name in files}}
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


# ----------------------------------------------------------------------------- reading

def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelFileError(path, "body loop not found (or its writing was interrupted)", REBUILD)
    try:
        manifest = json.loads(path.read_text())
        version, files = manifest["format_version"], dict(manifest["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(path, f"cannot parse the body loop manifest ({type(exc).__name__}: {exc})",
                             REBUILD) from exc
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"body loop format {version}, this version reads {FORMAT_VERSION}", REBUILD)
    for name, digest in files.items():
        file = folder / name
        if not file.is_file():
            raise ModelFileError(file, "listed in body.json but missing", "copy the whole avatar folder, or " + REBUILD)
        if sha256_file(file) != digest:
            raise ModelFileError(file, "sha256 differs from body.json (corrupt or replaced)", REBUILD)
    return manifest


def _decode(path: Path, count: int, height: int, width: int) -> np.ndarray:
    """All frames of a body-loop mp4, cropped to (height, width) -> (count, height, width, 3)."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(raw, np.uint8).reshape(h, w, 3)[:height, :width] for raw in reader]
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        raise ModelFileError(path, f"cannot decode ({exc})", REBUILD) from exc
    if len(frames) != count or (h, w) != (height + height % 2, width + width % 2):
        raise ModelFileError(path, f"has {len(frames)} frames of {w}x{h}, body.json expects {count} of "
                                   f"{width}x{height}", REBUILD)
    return np.stack(frames)


def read_body_loop(folder: str | os.PathLike) -> BodyLoop:
    """Read and check a body loop written by write_body_loop (ModelFileError when a file is
    missing, corrupt, or does not match the others)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    arrays = read_npz(folder / LOOP_ARRAYS, "body loop arrays", REBUILD, LOOP_KEYS)
    indices, size = arrays["frame_indices"], int(arrays["crop_size"])
    count = int(manifest["frames"])
    packed = arrays["head_masks"]
    if indices.shape != (count,) or packed.shape != (count, size, (size + 7) // 8):
        raise ModelFileError(folder / LOOP_ARRAYS, f"frame_indices {indices.shape} / head_masks {packed.shape} do "
                                                   f"not match {count} frames of {size} px in body.json", REBUILD)
    width, height = (int(v) for v in arrays["source_size"])
    has_source = bool(manifest.get("has_source"))
    if has_source != (SOURCE_VIDEO in manifest["sha256"]):
        raise ModelFileError(folder / MANIFEST, "has_source disagrees with the files listed", REBUILD)
    return BodyLoop(
        crops=_decode(folder / CROP_VIDEO, count, size, size),
        head_masks=np.unpackbits(packed, axis=-1, count=size).astype(bool),
        sources=_decode(folder / SOURCE_VIDEO, count, height, width) if has_source else None,
        frame_indices=indices.astype(np.int64), box=arrays["box"].astype(np.float64),
        source_size=(width, height), fps=float(arrays["fps"]))
