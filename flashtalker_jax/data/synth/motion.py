"""Motion that speech does not fully determine: blinks, brows, gaze and head pose.

Everything is drawn from an explicit `np.random.Generator`, so an identity's seed fixes it.
Smooth random tracks are white noise low-passed by a Gaussian kernel and rescaled to a
unit standard deviation, then to the configured amplitude. Brows and head pitch are
partly coupled to the speech envelope (speakers raise brows and nod on emphasis), the
rest is noise, so audio predicts them only in part, as in real footage.
"""
from __future__ import annotations

import ml_collections
import numpy as np


def smooth_noise(rng: np.random.Generator, num_frames: int, channels: int, sigma_frames: float) -> np.ndarray:
    """Unit-std Gaussian-filtered noise (num_frames, channels)."""
    radius = int(np.ceil(3 * sigma_frames))
    white = rng.standard_normal((num_frames + 2 * radius, channels))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / max(sigma_frames, 1e-6)) ** 2)
    kernel /= kernel.sum()
    smooth = np.stack([np.convolve(white[:, c], kernel, mode="valid") for c in range(channels)], -1)
    return (smooth - smooth.mean(0)) / np.maximum(smooth.std(0), 1e-9)


def speech_envelope(waveform: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Per-frame RMS of the audio normalised to [0, 1] (num_frames,)."""
    per_frame = sample_rate / fps
    rms = np.zeros(num_frames)
    for i in range(num_frames):
        chunk = waveform[int(round(i * per_frame)):int(round((i + 1) * per_frame))]
        rms[i] = np.sqrt(np.mean(np.square(chunk, dtype=np.float64))) if chunk.size else 0.0
    return rms / max(rms.max(), 1e-9)


def blink_track(rng: np.random.Generator, num_frames: int, fps: float, interval: tuple[float, float],
                duration: float) -> np.ndarray:
    """Eye closure in [0, 1] per frame: raised-cosine blinks at random intervals (num_frames,)."""
    times = (np.arange(num_frames) + 0.5) / fps
    track = np.zeros(num_frames)
    t = rng.uniform(0.3, interval[1])
    while num_frames and t < times[-1] + duration:
        phase = (times - t) / duration
        inside = (phase >= 0) & (phase <= 1)
        track[inside] = np.maximum(track[inside], 0.5 * (1 - np.cos(2 * np.pi * phase[inside])))
        t += rng.uniform(*interval)
    return track


def face_motion(rng: np.random.Generator, num_frames: int, fps: float, envelope: np.ndarray,
                cfg: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Blink (T,), brow raise (T,), eyes_pose (T, 6), rotation (T, 3), translation (T, 3)."""
    sigma = cfg.motion_seconds * fps / 2.0
    smooth_env = np.convolve(envelope, np.ones(5) / 5.0, mode="same")
    emphasis = smooth_env - smooth_env.mean()
    blink = cfg.blink_strength * blink_track(rng, num_frames, fps, tuple(cfg.blink_interval_seconds),
                                             cfg.blink_seconds)
    brow = cfg.brow_noise * smooth_noise(rng, num_frames, 1, sigma / 2)[:, 0] + cfg.brow_speech_gain * emphasis
    rotation = smooth_noise(rng, num_frames, 3, sigma) * np.asarray(cfg.rotation_std)
    rotation[:, 0] += 0.5 * cfg.rotation_std[0] * emphasis   # nod on emphasis (pitch about x)
    translation = smooth_noise(rng, num_frames, 3, sigma) * np.asarray(cfg.translation_std)
    gaze = smooth_noise(rng, num_frames, 2, sigma / 3) * cfg.eye_gaze_std
    eye = np.concatenate([gaze, np.zeros((num_frames, 1))], -1)   # pitch, yaw; no roll
    return {"blink": blink.astype(np.float32), "brow": brow.astype(np.float32),
            "eyes_pose": np.concatenate([eye, eye], -1).astype(np.float32),
            "rotation": rotation.astype(np.float32), "translation": translation.astype(np.float32)}
