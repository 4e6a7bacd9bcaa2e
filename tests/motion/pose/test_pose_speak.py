"""speak --pose generated: the MotionFn wrapper replaces the pose keys chunk by chunk and
keeps everything else (a real-footage full frame: tests/speak/test_generated_full_frame.py)."""
from __future__ import annotations

import numpy as np
import pytest

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.pipeline.speaker import load_speaker, with_generated_pose


class FixedGenerator:
    def generate(self, audio, n_frames, fps):
        t = np.arange(n_frames, dtype=np.float32)[:, None]
        return {"rotation": np.repeat(t, 3, 1), "translation": np.repeat(-t, 3, 1)}


def test_wrapper_overrides_pose_per_chunk():
    def motion_fn(audio, n_frames):
        for start in range(0, n_frames, 4):
            t = min(4, n_frames - start)
            yield {"expr": np.ones((t, 2)), "rotation": np.zeros((t, 3)), "translation": np.zeros((t, 3)),
                   "eyes_pose": np.full((t, 6), 7.0)}

    chunks = list(with_generated_pose(motion_fn, FixedGenerator(), 25.0)("clip", 10))
    rotation = np.concatenate([c["rotation"] for c in chunks])
    np.testing.assert_array_equal(rotation[:, 0], np.arange(10))
    assert np.concatenate([c["translation"] for c in chunks])[-1, 0] == -9
    assert all((c["eyes_pose"] == 7).all() and (c["expr"] == 1).all() for c in chunks)


def test_unknown_mode_and_pose_from_refused(tmp_path):
    with pytest.raises(ConfigError, match="pose"):
        load_speaker(tmp_path, tmp_path, pose="dance")
    with pytest.raises(ConfigError, match="--pose-from"):
        load_speaker(tmp_path, tmp_path, pose="generated", pose_from=tmp_path)
