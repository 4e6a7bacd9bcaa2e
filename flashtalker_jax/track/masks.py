"""Person masks (fg_masks/) from MediaPipe's selfie segmenter.

The bundle (../shared/data/models/selfie_segmenter.tflite, with Tasks metadata) has one
label; its confidence mask is the person probability, written as an 8-bit PNG (soft
edges kept: the avatar's losses weight pixels by it).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from flashtalker_jax.data.vhap import write_png
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.progress import progress

FIX = "pass --segmenter PATH (MediaPipe selfie_segmenter.tflite with Tasks metadata)"


class PersonSegmenter:
    """MediaPipe ImageSegmenter in IMAGE mode; use as a context manager."""

    def __init__(self, model_path: str | os.PathLike):
        if not os.path.isfile(model_path):
            raise ModelFileError(model_path, "MediaPipe selfie segmenter not found", FIX)
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=os.fspath(model_path)),
            running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True,
            output_category_mask=False)
        try:
            self._segmenter = vision.ImageSegmenter.create_from_options(options)
        except (RuntimeError, ValueError) as err:
            raise ModelFileError(model_path, f"MediaPipe could not load it: {err}", FIX) from err

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self._segmenter.close()

    def person(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> uint8 (H, W) person probability x 255."""
        import mediapipe as mp

        result = self._segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                  data=np.ascontiguousarray(frame)))
        prob = result.confidence_masks[0].numpy_view().reshape(frame.shape[:2])
        return np.round(np.clip(prob, 0, 1) * 255).astype(np.uint8)


def write_person_masks(images: list[Path], out_dir: Path, model_path, compress_level: int) -> None:
    """fg_masks/<stem>.png for every image (existing masks are kept: a killed run resumes)."""
    todo = [p for p in images if not (out_dir / p.name).is_file()]
    if not todo:
        return
    with PersonSegmenter(model_path) as segmenter:
        for path in progress(todo, desc="masks", unit="frame"):
            frame = np.asarray(Image.open(path).convert("RGB"))
            write_png(out_dir / path.name, segmenter.person(frame), compress_level)
