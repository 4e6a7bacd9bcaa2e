"""MediaPipe FaceLandmarker as the landmark and blendshape detector of the metrics.

The model bundle (face_landmarker.task) is user-supplied; its path is an argument. Frames
are run in IMAGE mode, i.e. detected independently: the VIDEO mode's tracker smooths over
time, which would hide exactly the jitter the stability metric must see.

Landmark arrays are (T, 478, 3): x, y in pixels, z in MediaPipe's relative depth scaled by
the image width. Frames without a face hold NaN and `found` is False there.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import numpy as np

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.progress import progress

NUM_LANDMARKS = 478
# Face mesh without the 10 iris points (468-477).
FACE_IDS = tuple(range(468))
# Every point of MediaPipe's FACE_LANDMARKS_LIPS connections (outer and inner contours).
LIP_IDS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
           185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375,
           402, 405, 409, 415)
# Inner-lip points paired top/bottom (left, centre, right) for the mouth opening.
INNER_LIP_UPPER = (82, 13, 312)
INNER_LIP_LOWER = (87, 14, 317)
# Nose midline, bridge to tip: rigid with the skull, unaffected by jaw and most expressions.
NOSE_IDS = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2)
# The 52 blendshape categories in MediaPipe's output order.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")


@dataclasses.dataclass(frozen=True)
class FaceTrack:
    """Per-frame detections: landmarks (T, 478, 3), blendshapes (T, 52), found (T,) bool."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    found: np.ndarray


class FaceLandmarker:
    """One MediaPipe FaceLandmarker (single face, IMAGE mode); use as a context manager."""

    def __init__(self, model_path: str | os.PathLike):
        if not os.path.isfile(model_path):
            raise ModelFileError(model_path, "MediaPipe face landmarker model not found",
                                 "pass the path of a face_landmarker.task bundle")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=os.fspath(model_path)),
            running_mode=vision.RunningMode.IMAGE, num_faces=1,
            output_face_blendshapes=True)
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as err:
            raise ModelFileError(model_path, f"MediaPipe could not load it: {err}",
                                 "pass a valid face_landmarker.task bundle") from err

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._landmarker.close()

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """uint8 (H, W, 3) RGB frame -> (landmarks (478, 3) px, blendshapes (52,)) or None."""
        import mediapipe as mp

        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB frame,"
                             f" got {frame.dtype} {frame.shape}")
        height, width = frame.shape[:2]
        result = self._landmarker.detect(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
        if not result.face_landmarks:
            return None
        landmarks = np.array([[p.x * width, p.y * height, p.z * width]
                              for p in result.face_landmarks[0]], np.float32)
        blendshapes = np.array([c.score for c in result.face_blendshapes[0]], np.float32)
        return landmarks, blendshapes


def track_faces(frames: Iterable[np.ndarray], model_path: str | os.PathLike,
                total: int | None = None, desc: str = "landmarks") -> FaceTrack:
    """Detect every frame of an iterable of uint8 (H, W, 3) frames, with a progress bar."""
    landmarks, blendshapes, found = [], [], []
    with FaceLandmarker(model_path) as landmarker:
        for frame in progress(frames, total=total, desc=desc, unit="frame"):
            detection = landmarker.detect(frame)
            found.append(detection is not None)
            if detection is None:
                detection = (np.full((NUM_LANDMARKS, 3), np.nan, np.float32),
                             np.full(len(BLENDSHAPE_NAMES), np.nan, np.float32))
            landmarks.append(detection[0])
            blendshapes.append(detection[1])
    if not found:
        raise ValueError("no frames were given to track_faces")
    return FaceTrack(np.stack(landmarks), np.stack(blendshapes), np.array(found))
