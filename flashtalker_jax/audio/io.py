"""Load and validate audio files: any rate and channel count in, mono float32 at one rate out.

Messages go through `warnings.warn` (one mechanism for everything, visible by default
and testable): `AudioConversionWarning` when the file is downmixed or resampled,
`AudioQualityWarning` for silence or clipping. Unusable input (missing, unreadable,
empty, NaN/inf samples) raises `InputFileError` naming the file.
"""
from __future__ import annotations

import os
import warnings

import librosa
import ml_collections
import numpy as np
import soundfile

from flashtalker_jax.config import load_config
from flashtalker_jax.errors import InputFileError

# The project's conventions, named once: every waveform is brought to SAMPLE_RATE (the
# rate of configs/audio_features.py and of the wav2vec2 checkpoints) and every feature
# track, motion track and video is aligned to FPS frames per second unless a config or a
# data folder says otherwise.
SAMPLE_RATE = 16000
FPS = 25.0


class AudioConversionWarning(UserWarning):
    """The file was converted (downmixed to mono or resampled) on loading."""


class AudioQualityWarning(UserWarning):
    """The audio is usable but suspicious (silent or clipped)."""


def default_audio_config() -> ml_collections.ConfigDict:
    """The project's audio feature config (configs/audio_features.py)."""
    return load_config("audio_features")


def _read(path: str) -> tuple[np.ndarray, int]:
    """Read every channel as float32 (frames, channels) in [-1, 1] plus the file's rate."""
    if not os.path.isfile(path):
        raise InputFileError(path, "audio file not found")
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputFileError(path, f"cannot decode audio ({exc})",
                             "use WAV/FLAC/OGG/MP3, e.g. `ffmpeg -i in.m4a out.wav`") from exc
    return data, int(rate)


def to_mono(data: np.ndarray, path: str) -> np.ndarray:
    """(frames, channels) -> (frames,) by averaging channels, with a message when C > 1."""
    if data.shape[1] > 1:
        warnings.warn(f"{path}: downmixing {data.shape[1]} channels to mono (channel mean)",
                      AudioConversionWarning, stacklevel=3)
    return data.mean(axis=1)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int, path: str) -> np.ndarray:
    """Band-limited resampling (soxr high quality via librosa), with a message when rates differ."""
    if source_rate == target_rate:
        return waveform
    warnings.warn(f"{path}: resampling {source_rate} Hz -> {target_rate} Hz",
                  AudioConversionWarning, stacklevel=3)
    return librosa.resample(waveform, orig_sr=source_rate, target_sr=target_rate, res_type="soxr_hq")


def check_waveform(waveform: np.ndarray, path: str, checks: ml_collections.ConfigDict) -> None:
    """Raise for empty or non-finite audio; warn for silence and clipping."""
    if waveform.size == 0:
        raise InputFileError(path, "audio file contains no samples")
    if not np.all(np.isfinite(waveform)):
        bad = int(np.count_nonzero(~np.isfinite(waveform)))
        raise InputFileError(path, f"{bad} of {waveform.size} samples are NaN or infinite",
                             "re-export the audio; the file is corrupt")
    peak = float(np.max(np.abs(waveform)))
    if peak < checks.silence_peak:
        warnings.warn(f"{path}: audio is silent (peak {peak:.2e} < {checks.silence_peak}); "
                      "lips will not move", AudioQualityWarning, stacklevel=3)
    clipped = float(np.mean(np.abs(waveform) >= checks.clip_level))
    if clipped > checks.clip_fraction:
        warnings.warn(f"{path}: {100 * clipped:.2f}% of samples are clipped at full scale; "
                      "features will be distorted", AudioQualityWarning, stacklevel=3)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               config: ml_collections.ConfigDict | None = None) -> np.ndarray:
    """Read an audio file as mono float32 (S,) in [-1, 1] at `sample_rate` Hz.

    Multi-channel files are averaged to mono and other rates resampled, each with an
    `AudioConversionWarning`. `config` supplies the silence/clipping thresholds
    (`config.checks`, default configs/audio_features.py).
    """
    path = os.fspath(path)
    checks = (default_audio_config() if config is None else config).checks
    data, rate = _read(path)
    if data.shape[0] == 0:
        raise InputFileError(path, "audio file contains no samples")
    # Check before resampling: NaNs would spread through the filter, and clipping is a
    # property of the stored samples.
    check_waveform(data.reshape(-1), path, checks)
    waveform = resample(to_mono(data, path), rate, sample_rate, path)
    return np.clip(waveform, -1.0, 1.0).astype(np.float32)
