"""Per-clip feature cache: features are computed once per (audio content, feature settings).

The cache key is the SHA-256 of the audio file's bytes plus a hash of everything that
changes the result: the feature kind, the full audio feature config, the fps and, for
wav2vec2, the model's checkpoint id. Renaming or moving a clip keeps its cache entry;
editing it, the config or the checkpoint makes a new one. Entries are .npy files written
atomically, so an interrupted run never leaves a truncated entry behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ml_collections
import numpy as np

from flashtalker_jax.audio.features import log_mel_features, num_video_frames
from flashtalker_jax.audio.io import default_audio_config, load_audio
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path

FEATURE_KINDS = ("log_mel", "wav2vec2")
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputFileError(path, f"cannot read audio file ({exc})") from exc
    return digest.hexdigest()


def cache_key(path: str | os.PathLike, kind: str, config: ml_collections.ConfigDict, fps: float,
              model=None) -> str:
    settings = {"kind": kind, "config": config.to_dict(), "fps": fps,
                "model": None if model is None else model.checkpoint_id}
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}-{file_sha256(path)[:24]}-{settings_hash[:16]}"


def compute_features(path: str | os.PathLike, kind: str, config: ml_collections.ConfigDict, fps: float,
                     model=None) -> np.ndarray:
    """Features of one clip on the video-step grid, (steps_per_frame * n_frames, D) float32."""
    if kind == "log_mel":
        waveform = load_audio(path, config.sample_rate, config)
        return log_mel_features(waveform, config.sample_rate, fps, config)
    # Imported here so `import flashtalker_jax.audio` (log-mel only) does not load JAX/Flax.
    from flashtalker_jax.audio.wav2vec2 import wav2vec2_features, wav2vec2_to_video_steps

    rate = model.preprocessor.sampling_rate
    waveform = load_audio(path, rate, config)
    n_frames = num_video_frames(waveform.shape[0], rate, fps)
    return wav2vec2_to_video_steps(wav2vec2_features(model, waveform), model.settings, rate,
                                   n_frames, fps, config.steps_per_frame)


def cached_features(path: str | os.PathLike, kind: str, cache_dir: str | os.PathLike, *,
                    fps: float | None = None, config: ml_collections.ConfigDict | None = None,
                    model=None) -> np.ndarray:
    """Features of an audio clip aligned to video frames, read from or written to `cache_dir`.

    Args:
      path: audio file (any rate / channel count; see load_audio).
      kind: "log_mel" (needs no weights) or "wav2vec2" (needs `model`, the LoadedWav2Vec2
        returned first by load_wav2vec2).
      cache_dir: folder of .npy entries (created on demand).
      fps: video frame rate (default config.fps); config: audio feature config
        (default configs/audio_features.py).
    Returns:
      (config.steps_per_frame * n_frames, D) float32, n_frames = round(duration * fps).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
    if kind == "wav2vec2" and model is None:
        raise ValueError("kind='wav2vec2' needs the model returned by load_wav2vec2")
    config = default_audio_config() if config is None else config
    fps = config.fps if fps is None else fps
    entry = Path(cache_dir) / f"{cache_key(path, kind, config, fps, model)}.npy"
    if entry.is_file():
        return np.load(entry)
    features = compute_features(path, kind, config, fps, model)
    with atomic_path(entry) as tmp:
        with open(tmp, "wb") as file:
            np.save(file, features)
    return features
