"""Shared real test media for the metrics tests (skipped cleanly when absent)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LANDMARKER = SHARED_DATA / "models" / "face_landmarker.task"
MAY_VIDEO = SHARED_DATA / "video" / "may_5s.mp4"


def _shift_frame(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate a frame by whole pixels (wrapping; the face sits far from the borders)."""
    return np.roll(frame, (dy, dx), axis=(0, 1))


@pytest.fixture(scope="session")
def shift_frame():
    return _shift_frame


@pytest.fixture(scope="session")
def landmarker_path():
    if not LANDMARKER.is_file():
        pytest.skip(f"MediaPipe model not found at {LANDMARKER} (shared test data absent)")
    return LANDMARKER


@pytest.fixture(scope="session")
def may_frames():
    """The first 24 frames of may_5s.mp4, uint8 (24, 512, 512, 3), read by streaming."""
    if not MAY_VIDEO.is_file():
        pytest.skip(f"test video not found at {MAY_VIDEO} (shared test data absent)")
    import imageio.v3 as iio

    frames = []
    with warnings.catch_warnings():
        # imageio starts ffmpeg by fork+exec; JAX's fork warning does not apply to an exec.
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        for frame in iio.imiter(MAY_VIDEO):
            frames.append(frame)
            if len(frames) == 24:
                break
    return np.stack(frames)
