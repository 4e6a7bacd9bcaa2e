"""Prepare a real talking-head video for tracking: frames, 16 kHz audio, face crop, landmarks.

Output folder (`flashtalker data import-video VIDEO --out DIR`):
    images/00000_00.png       face crop (one square box for the whole clip, so the camera
                              stays fixed as VHAP assumes), resized to crop_size
    landmarks/00000.npz       MediaPipe FaceLandmarker: landmarks (478, 3) in crop pixels
                              (z in the same pixel scale), frame_landmarks (478, 3) in
                              source pixels, blendshapes (52,), found (bool)
    audio.wav                 mono 16 kHz (ffmpeg from imageio-ffmpeg)
    import_report.json        counts, crop box, and what training still needs

Two streaming passes (a whole clip in memory does not fit): landmarks on the source
frames, then cropping. FLAME tracking of the crops (flame_param/, fg_masks/, cameras in
transforms.json) is not part of this command; the report lists it as missing.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import ml_collections
import numpy as np

from flashtalker_jax.audio.io import SAMPLE_RATE
from flashtalker_jax.data.vhap import AUDIO_FILE, CANONICAL_FILE, write_png
from flashtalker_jax.errors import InputFileError, ModelFileError
from flashtalker_jax.utils.files import atomic_path
from flashtalker_jax.utils.progress import progress

# Faces detected per frame; the largest (landmark bounding box) is the speaker.
MAX_FACES = 3

MISSING_FOR_TRAINING = {
    "flame_param/": "per-frame FLAME parameters: run `flashtalker track` on this folder (or use VHAP)",
    "fg_masks/": "foreground masks (`flashtalker track` writes them with the selfie segmenter)",
    "transforms*.json": "camera intrinsics/extrinsics and train/test splits, written with the tracked FLAME",
    CANONICAL_FILE: "the identity's shape and static offsets, from tracking",
}


def _read_frames(path: Path):
    """Yield (H, W, 3) uint8 frames, streaming; first the metadata dict."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise InputFileError(path, f"cannot decode video ({exc})") from exc
    width, height = meta["size"]
    yield meta
    for raw in reader:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def extract_audio(video: Path, out: Path, sample_rate: int) -> None:
    """Mono audio at `sample_rate` as 16-bit WAV, through the bundled ffmpeg."""
    import imageio_ffmpeg

    with atomic_path(out) as tmp:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-vn",
               "-ac", "1", "-ar", str(sample_rate), "-acodec", "pcm_s16le", "-f", "wav", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp.is_file():
            raise InputFileError(video, f"cannot extract audio: {proc.stderr.strip()[-500:] or 'no audio stream'}")


def _landmarker(model_path: Path, min_confidence: float):
    if not model_path.is_file():
        raise ModelFileError(model_path, "MediaPipe face landmarker model not found",
                             "pass --landmarker PATH or set --config.video.landmarker")
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.FaceLandmarkerOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.VIDEO, num_faces=MAX_FACES, output_face_blendshapes=True,
        min_face_detection_confidence=min_confidence)
    try:
        return vision.FaceLandmarker.create_from_options(options)
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(model_path, f"cannot load MediaPipe model ({exc})") from exc


def largest_face(faces: list[np.ndarray]) -> int:
    """Index of the face whose landmark bounding box (x, y) has the largest area."""
    return int(np.argmax([np.prod(f[:, :2].max(0) - f[:, :2].min(0)) for f in faces]))


def detect_landmarks(video: Path, model_path: Path, min_confidence: float):
    """Pass 1 -> meta, landmarks (N, 478, 3) source pixels (NaN where no face), blendshapes (N, 52)."""
    import mediapipe as mp

    frames = _read_frames(video)
    meta = next(frames)
    width, height = meta["size"]
    total = int(round(meta.get("duration", 0) * meta["fps"])) or None
    landmarks, blendshapes = [], []
    with _landmarker(model_path, min_confidence) as landmarker:
        for i, frame in enumerate(progress(frames, total=total, desc="landmarks", unit="frame")):
            result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)),
                                                 int(round(i * 1000 / meta["fps"])))
            if result.face_landmarks:
                faces = [np.array([(p.x * width, p.y * height, p.z * width) for p in face], np.float32)
                         for face in result.face_landmarks]
                largest = largest_face(faces)
                points = faces[largest]
                scores = np.array([c.score for c in result.face_blendshapes[largest]], np.float32)
            else:
                points, scores = np.full((478, 3), np.nan, np.float32), np.full(52, np.nan, np.float32)
            landmarks.append(points)
            blendshapes.append(scores)
    if not landmarks:
        raise InputFileError(video, "video has no frames")
    return meta, np.stack(landmarks), np.stack(blendshapes)


def crop_box(landmarks: np.ndarray, margin: float) -> np.ndarray:
    """One square box [x0, y0, side] (source pixels) around the face in every frame."""
    found = ~np.isnan(landmarks[:, 0, 0])
    pts = landmarks[found]
    lo, hi = pts[..., :2].min(1), pts[..., :2].max(1)            # (n, 2) per frame
    centre = np.median((lo + hi) / 2, axis=0)
    side = margin * float((hi - lo).max())
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side], np.float64)


def crop_frame(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop the square box (zero padding outside the frame) and resize to (size, size, 3)."""
    from PIL import Image

    x0, y0, side = box
    h, w = frame.shape[:2]
    pad = int(np.ceil(max(0.0, -x0, -y0, x0 + side - w, y0 + side - h)))
    if pad:
        frame = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)))
        x0, y0 = x0 + pad, y0 + pad
    image = Image.fromarray(frame)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR,
                                   box=(float(x0), float(y0), float(x0 + side), float(y0 + side))))


def import_video(video: str | os.PathLike, out: str | os.PathLike, cfg: ml_collections.ConfigDict,
                 sample_rate: int = SAMPLE_RATE, require_audio: bool = True) -> dict:
    """Run both passes and write the folder; returns the report (also in import_report.json).
    With require_audio=False a video without sound is imported (report: audio_seconds 0)."""
    video, out = Path(video), Path(out)
    if not video.is_file():
        raise InputFileError(video, "video file not found")
    out.mkdir(parents=True, exist_ok=True)
    try:
        extract_audio(video, out / AUDIO_FILE, sample_rate)
    except InputFileError:
        if require_audio:
            raise
    meta, landmarks, blendshapes = detect_landmarks(video, Path(cfg.landmarker), cfg.min_detection_confidence)
    found = ~np.isnan(landmarks[:, 0, 0])
    if not found.any():
        raise InputFileError(video, "no face found in any frame")
    box = crop_box(landmarks, cfg.crop_margin)
    scale = cfg.crop_size / box[2]
    frames = _read_frames(video)
    next(frames)
    count = 0
    for i, frame in enumerate(progress(frames, total=len(landmarks), desc="crops", unit="frame")):
        if i >= len(landmarks):
            break
        write_png(out / "images" / f"{i:05d}_00.png", crop_frame(frame, box, cfg.crop_size),
                  cfg.png_compress_level)
        crop_points = (landmarks[i] - np.array([box[0], box[1], 0.0])) * scale
        with atomic_path(out / "landmarks" / f"{i:05d}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, landmarks=crop_points.astype(np.float32), frame_landmarks=landmarks[i],
                         blendshapes=blendshapes[i], found=found[i])
        count += 1
    report = _report(video, out, meta, count, found, box, cfg, sample_rate)
    with atomic_path(out / "import_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return report


def _report(video, out, meta, count, found, box, cfg, sample_rate) -> dict:
    import soundfile

    has_audio = (out / AUDIO_FILE).is_file()
    info = soundfile.info(str(out / AUDIO_FILE)) if has_audio else None
    return {
        "video": str(video), "frames": int(count), "fps": float(meta["fps"]),
        "video_seconds": count / float(meta["fps"]),
        "audio_seconds": info.frames / info.samplerate if info else 0.0,
        "audio_sample_rate": int(info.samplerate) if info else None,
        "faces_found": int(found.sum()), "frames_without_face": np.nonzero(~found)[0].tolist(),
        "crop_box_xy_side": [float(v) for v in box], "crop_size": int(cfg.crop_size),
        "source_size": list(meta["size"]),
        "missing_for_training": MISSING_FOR_TRAINING,
    }
