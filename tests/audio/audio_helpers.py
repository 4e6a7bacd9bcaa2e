"""Shared helpers for audio tests: generated clips written with soundfile."""
from pathlib import Path

import numpy as np
import soundfile

def write_wav(path, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    soundfile.write(str(path), data, rate, subtype=subtype)
    return Path(path)


def speech_like(seconds: float, rate: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Harmonic tone with a slow amplitude envelope plus light noise, (S,) or (S, C), peak ~0.5."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((180.0, 360.0, 900.0, 2400.0)))
    mono = 0.25 * envelope * tone + 0.01 * rng.standard_normal(t.shape)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (1.0 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def shared_clip(shared_data: Path, name: str) -> Path:
    """A real speech clip of ../shared/data/audio (the `shared_data` fixture, conftest.py)."""
    path = shared_data / "audio" / name
    assert path.is_file(), f"{path}: missing from the shared test media"
    return path
