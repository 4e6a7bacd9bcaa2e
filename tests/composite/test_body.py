"""Body loop: write_body_loop from a tiny tracked VHAP folder, read_body_loop back, and the
errors for a missing source video and damaged loop files."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.composite.body import read_body_loop, write_body_loop
from flashtalker_jax.data import vhap
from flashtalker_jax.data.import_video import crop_frame
from flashtalker_jax.errors import InputFileError, ModelFileError
from flashtalker_jax.video import mp4_writer

FRAMES, SIZE, HEIGHT, WIDTH, FPS = 6, 64, 96, 160, 25.0
BOX = [-13.4, 30.2, 90.7]                 # partly outside the 160x96 source, as may_5s's is
SPLITS = {"train": [0, 1, 2, 3], "val": [], "test": [4, 5]}
CRF = 12


def source_frame(t: int) -> np.ndarray:
    """Smooth, moving content: H.264 at a low crf reproduces it within a few levels."""
    y, x = np.mgrid[:HEIGHT, :WIDTH].astype(np.float64)
    rgb = [128 + 90 * np.sin(2 * np.pi * (x + 12 * t) / 48 + c) * np.cos(2 * np.pi * y / 40) for c in range(3)]
    return np.clip(np.stack(rgb, -1), 0, 255).round().astype(np.uint8)


def head_mask(t: int) -> np.ndarray:
    """A disc moving with t: every frame's mask differs, so a swapped frame would show."""
    y, x = np.mgrid[:SIZE, :SIZE]
    return ((((y - 24) ** 2 + (x - 20 - 3 * t) ** 2) < 15 ** 2) * 255).astype(np.uint8)


def write_tracked_folder(root: Path, extra: dict | None) -> None:
    """What `flashtalker track` leaves: crops, person and head masks, FLAME files, splits."""
    K = np.array([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    camera = vhap.camera_record(K, np.eye(4), SIZE, SIZE)
    records = []
    for t in range(FRAMES):
        crop = crop_frame(source_frame(t), np.array(BOX), SIZE) if extra else source_frame(t)[:SIZE, :SIZE]
        record = vhap.write_frame(root, t, crop, np.full((SIZE, SIZE), 255, np.uint8),
                                  {"expr": np.zeros(10), "rotation": np.zeros(3)})
        vhap.write_png(root / "head_masks" / f"{vhap.frame_stem(t)}.png", head_mask(t))
        records.append({**record, "timestep_index": t, "camera_index": 0, **camera})
    vhap.write_transforms(root, records, SPLITS, FPS, audio_path=None, extra=extra)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    """tmp/clip.mp4 (the source) and tmp/track (the VHAP folder naming it relatively)."""
    base = tmp_path_factory.mktemp("body")
    with mp4_writer(base / "clip.mp4", WIDTH, HEIGHT, FPS, crf=CRF) as write:
        for t in range(FRAMES):
            write(source_frame(t))
    write_tracked_folder(base / "track", {"crop_box_xy_side": BOX, "source_size": [WIDTH, HEIGHT],
                                          "source_video": "clip.mp4"})
    return base / "track"


@pytest.fixture(scope="module")
def written(tracked, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("avatar") / "body"
    write_body_loop(tracked, out, loop_frames=3, crf=CRF)
    return out


def decoded_source_frames(path: Path) -> list[np.ndarray]:
    from flashtalker_jax.video import iter_frames

    return list(iter_frames(path))


def test_round_trip(written, tracked):
    manifest = json.loads((written / "body.json").read_text())
    assert manifest["frames"] == 3 and manifest["has_source"] and set(manifest["sha256"]) == {
        "crop.mp4", "source.mp4", "loop.npz"}
    loop = read_body_loop(written)
    # The last 3 train frames, ending just before the first test frame (4).
    np.testing.assert_array_equal(loop.frame_indices, [1, 2, 3])
    assert len(loop) == 3 and loop.fps == FPS and loop.source_size == (WIDTH, HEIGHT)
    np.testing.assert_allclose(loop.box, BOX)
    # Head masks are stored bit-packed: exact.
    np.testing.assert_array_equal(loop.head_masks, np.stack([head_mask(t) > 127 for t in (1, 2, 3)]))
    # Crops and sources went through the project's H.264 writer (yuv420p: chroma at half
    # resolution, limited-range YUV). This saturated test pattern (each channel a phase-
    # shifted wave) is a worst case for chroma subsampling: measured mean error 3-4 levels
    # (green, mostly luma, ~1.6), max ~33 at the zero-padding edge of the crop. Bounds: mean
    # < 5, max <= 48. A wrong or swapped frame errs by ~4x more (the pattern moves a quarter
    # wavelength per frame), so the same comparison also pins the frame selection.
    crops = np.stack([vhap._read_image(tracked / f"images/{vhap.frame_stem(t)}.png", SIZE, SIZE, "RGB")
                      for t in (1, 2, 3)]).astype(int)
    sources = np.stack([source_frame(t) for t in (1, 2, 3)]).astype(int)
    assert loop.crops.shape == (3, SIZE, SIZE, 3) and loop.crops.dtype == np.uint8
    assert loop.sources.shape == (3, HEIGHT, WIDTH, 3) and loop.sources.dtype == np.uint8
    for decoded, truth in ((loop.crops, crops), (loop.sources, sources)):
        error = np.abs(decoded.astype(int) - truth)
        assert error.mean() < 5.0 and error.max() <= 48, (error.mean(), error.max())
        swapped = np.abs(decoded.astype(int) - truth[[1, 2, 0]]).mean()
        assert swapped > 3 * error.mean(), (swapped, error.mean())


def test_fewer_train_frames_than_asked_takes_them_all(tracked, tmp_path):
    manifest = write_body_loop(tracked, tmp_path / "body", loop_frames=50, crf=CRF)
    assert manifest["frames"] == 4
    np.testing.assert_array_equal(read_body_loop(tmp_path / "body").frame_indices, [0, 1, 2, 3])


def test_no_source_video_when_the_crop_is_the_frame(tmp_path):
    """A folder without a crop box (synthetic data) is its own frame: no source.mp4, and
    no source video is asked for."""
    write_tracked_folder(tmp_path / "synth", None)
    manifest = write_body_loop(tmp_path / "synth", tmp_path / "body", loop_frames=2, crf=CRF)
    assert not manifest["has_source"] and not (tmp_path / "body" / "source.mp4").exists()
    loop = read_body_loop(tmp_path / "body")
    assert loop.sources is None and loop.source_size == (SIZE, SIZE)
    np.testing.assert_array_equal(loop.frame_indices, [2, 3])


def test_missing_source_video_names_it(tracked, tmp_path):
    moved = tmp_path / "track"
    shutil.copytree(tracked, moved)           # tmp_path has no clip.mp4 beside the folder
    with pytest.raises(InputFileError, match="clip.mp4") as caught:
        write_body_loop(moved, tmp_path / "body", loop_frames=2, crf=CRF)
    assert "pass source_video" in str(caught.value)
    assert not (tmp_path / "body" / "body.json").exists()
    # Given explicitly, the same folder works.
    write_body_loop(moved, tmp_path / "body", loop_frames=2, crf=CRF, source_video=tracked.parent / "clip.mp4")
    assert read_body_loop(tmp_path / "body").sources.shape == (2, HEIGHT, WIDTH, 3)


def copy_loop(written: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "body"
    shutil.copytree(written, folder)
    return folder


def rehash(folder: Path, name: str) -> None:
    """Update body.json's sha256 of `name`, so the damage reaches the reader behind it."""
    manifest = json.loads((folder / "body.json").read_text())
    manifest["sha256"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "body.json").write_text(json.dumps(manifest))


def test_corrupted_loop_npz(written, tmp_path):
    folder = copy_loop(written, tmp_path)
    data = bytearray((folder / "loop.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "loop.npz").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="loop.npz.*sha256"):
        read_body_loop(folder)
    (folder / "loop.npz").write_bytes(b"not an npz")
    rehash(folder, "loop.npz")
    with pytest.raises(ModelFileError, match="loop.npz.*cannot read"):
        read_body_loop(folder)


def test_mismatched_files(written, tmp_path):
    folder = copy_loop(written, tmp_path)
    with np.load(folder / "loop.npz") as data:
        arrays = dict(data)
    arrays["head_masks"] = arrays["head_masks"][:2]           # one mask short
    with open(folder / "loop.npz", "wb") as fh:
        np.savez(fh, **arrays)
    rehash(folder, "loop.npz")
    with pytest.raises(ModelFileError, match="do not match 3 frames"):
        read_body_loop(folder)


def test_missing_files(written, tmp_path):
    folder = copy_loop(written, tmp_path)
    (folder / "source.mp4").unlink()
    with pytest.raises(ModelFileError, match="source.mp4.*missing"):
        read_body_loop(folder)
    (folder / "body.json").unlink()
    with pytest.raises(ModelFileError, match="body.json.*not found"):
        read_body_loop(folder)


def test_pose_track_for_loop_matches_the_body_frames(written):
    """to_flame_params over the loop's pose track and BodyLoop.schedule pick the same
    recorded timestep at every output frame."""
    from flashtalker_jax.composite.body import pose_track_for_loop
    from flashtalker_jax.motion.inference import to_flame_params

    loop = read_body_loop(written)
    timesteps = np.arange(FRAMES)
    track = {"rotation": np.stack([timesteps, 0 * timesteps, 0 * timesteps], 1).astype(np.float32),
             "translation": np.zeros((FRAMES, 3), np.float32), "timesteps": timesteps}
    cut = pose_track_for_loop(track, loop.frame_indices)
    np.testing.assert_array_equal(cut["timesteps"], [1, 2, 3])
    params = to_flame_params(np.zeros((9, 13), np.float32), {k: v for k, v in cut.items() if k != "timesteps"},
                             np.zeros(4, np.float32), start=2)
    np.testing.assert_array_equal(params["rotation"][:, 0], loop.frame_indices[loop.schedule(2, 9)])
    with pytest.raises(ModelFileError, match="not in the replay pose track"):
        pose_track_for_loop({**track, "timesteps": timesteps + 10}, loop.frame_indices)
