"""Real test media for the metrics tests, from the `shared_data` fixture (conftest.py at the
repository root: skipped only when ../shared/data is absent)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

LANDMARKER = Path("models") / "face_landmarker.task"
MAY_VIDEO = Path("video") / "may_5s.mp4"


def _shift_frame(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate a frame by whole pixels (wrapping; the face sits far from the borders)."""
    return np.roll(frame, (dy, dx), axis=(0, 1))


@pytest.fixture(scope="session")
def shift_frame():
    return _shift_frame


@pytest.fixture(scope="session")
def landmarker_path(shared_data):
    path = shared_data / LANDMARKER
    assert path.is_file(), f"{path}: missing from the shared test media"
    return path


@pytest.fixture(scope="session")
def may_frames(shared_data):
    """The first 24 frames of may_5s.mp4, uint8 (24, 512, 512, 3), read by streaming."""
    video = shared_data / MAY_VIDEO
    assert video.is_file(), f"{video}: missing from the shared test media"
    import imageio.v3 as iio

    frames = []
    with warnings.catch_warnings():
        # imageio starts ffmpeg by fork+exec; JAX's fork warning does not apply to an exec.
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        for frame in iio.imiter(video):
            frames.append(frame)
            if len(frames) == 24:
                break
    return np.stack(frames)
