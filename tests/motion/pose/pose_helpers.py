"""Synthetic identities whose head motion follows their audio's loudness (so retrieval has
something to find), as in-memory databases or as tiny VHAP folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from flashtalker_jax.data import vhap
from flashtalker_jax.motion.pose.database import finish_database

FPS = 25.0
SR = 16000


def envelope(n_frames: int, seed: int) -> np.ndarray:
    """(n_frames,) smooth positive loudness: sums of slow sinusoids."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    e = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(0.2, 1.5, 3), rng.uniform(0, 6, 3)))
    return 1.2 + e / 3.0


def poses_of(env: np.ndarray) -> np.ndarray:
    """(T, 6) rotation + translation driven by the loudness (smooth, a few degrees / mm)."""
    return np.stack([0.05 * env, 0.03 * np.roll(env, 5), 0.02 * env ** 2,
                     0.004 * env, 0.002 * np.roll(env, 9), 0.003 * env], 1).astype(np.float32)


def waveform(env: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    per = int(SR / FPS)
    gain = np.repeat(env, per)
    return (0.05 * gain * rng.standard_normal(gain.size)).astype(np.float32)


def memory_database(n_frames: int = 200, seed: int = 0, window: int = 10, stride: int = 5):
    """A database whose audio rows are the log-mel of loudness-modulated noise."""
    from flashtalker_jax.audio.features import log_mel_features

    env = envelope(n_frames, seed)
    rows = log_mel_features(waveform(env, seed), SR, FPS)[:2 * n_frames]
    expr = np.stack([env, -env, np.zeros_like(env)], 1)
    return finish_database(poses_of(env), np.concatenate([expr, np.zeros((n_frames, 3))], 1), rows,
                           np.array([[0, n_frames]]), ("rotation", "translation"), FPS, window, stride)


def make_vhap(root: Path, n_frames: int = 150, test_frames: int = 30, seed: int = 0) -> Path:
    """A tracked folder of n_frames 8x8 frames with the poses/audio above."""
    env = envelope(n_frames, seed)
    poses = poses_of(env)
    K = np.array([[16.0, 0, 4], [0, 16.0, 4], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[2, 3] = 1.0
    frames = []
    for t in range(n_frames):
        flame = {"rotation": poses[t, :3], "translation": poses[t, 3:], "neck_pose": np.zeros(3),
                 "jaw_pose": np.array([0.02 * env[t], 0, 0]), "eyes_pose": np.zeros(6),
                 "expr": np.full(12, env[t], np.float32), "shape": np.zeros(10, np.float32)}
        record = vhap.write_frame(root, t, np.full((8, 8, 3), t % 256, np.uint8), np.full((8, 8), 255, np.uint8),
                                  flame)
        record.update(vhap.camera_record(K, c2w, 8, 8), timestep_index=t, camera_index=0)
        frames.append(record)
    vhap.write_transforms(root, frames, {"train": range(n_frames - test_frames),
                                         "test": range(n_frames - test_frames, n_frames)}, FPS)
    soundfile.write(root / "audio.wav", waveform(env, seed), SR, subtype="FLOAT")
    return root


def write_speech(path: Path, seconds: float, seed: int) -> Path:
    env = envelope(int(seconds * FPS), seed)
    soundfile.write(path, waveform(env, seed), SR, subtype="FLOAT")
    return path


def max_step(track: np.ndarray, std: np.ndarray) -> float:
    return float(np.abs(np.diff(track / std, axis=0)).max())
