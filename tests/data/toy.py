"""A tiny hand-made VHAP folder (no FLAME, no speech) for reader and pipeline tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from flashtalker_jax.data import vhap


def make_toy_identity(root: Path, seed: int, num_frames: int = 12, size: int = 16,
                      test_frames: int = 4, fps: float = 25.0, sample_rate: int = 16000) -> Path:
    """Frames whose pixels, FLAME params and audio all encode (seed, timestep), so tests can
    check that every field of a record came from the same frame."""
    rng = np.random.default_rng(seed)
    K = np.array([[2.0 * size, 0, size / 2], [0, 2.0 * size, size / 2], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[2, 3] = 1.0
    frames = []
    for t in range(num_frames):
        image = np.full((size, size, 3), (seed * 40 + t) % 256, np.uint8)
        image[0, 0] = rng.integers(0, 256, 3)
        mask = np.zeros((size, size), np.uint8)
        mask[2:-2, 2:-2] = 255
        flame = {"rotation": np.full(3, t, np.float32), "translation": np.zeros(3), "neck_pose": np.zeros(3),
                 "jaw_pose": np.array([0.01 * t, 0, 0]), "eyes_pose": np.zeros(6),
                 "expr": np.full(10, seed, np.float32), "shape": np.full(20, seed, np.float32),
                 "static_offset": np.zeros((5, 3))}
        record = vhap.write_frame(root, t, image, mask, flame)
        record.update(vhap.camera_record(K, c2w, size, size), timestep_index=t, camera_index=0)
        frames.append(record)
    splits = {"train": range(num_frames - test_frames), "test": range(num_frames - test_frames, num_frames)}
    vhap.write_transforms(root, frames, splits, fps)
    per_frame = int(sample_rate / fps)
    audio = np.repeat(np.arange(num_frames, dtype=np.float32) / 100.0 + seed / 1000.0, per_frame)
    soundfile.write(root / "audio.wav", audio, sample_rate, subtype="FLOAT")
    return root
