"""The one audio feature extractor of training and inference.

`FeatureExtractor` computes a motion task's features (log-mel or wav2vec2, configs/
audio_features.py) from an audio file or a decoded `Clip` (audio/clip.py), two ways:
  features(audio, fps)               the whole clip, (steps_per_frame * n_frames, D): what
                                     training slices into sentences (read from / written to
                                     the per-clip cache when `cache_dir` is set)
  rows(audio, fps, steps_per_frame)  an AudioRows (audio/windowed.py) that streamed
                                     inference reads one window at a time, and the frame
                                     count: log-mel = the whole-clip rows cut to whole frames
                                     (milliseconds); wav2vec2 = fixed segments of the clip
                                     (audio/windowed.py), bounded in memory on long files
Both routes give the same rows for a clip within one wav2vec2 segment
(tests/audio/test_extractor.py).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from flashtalker_jax.audio import cache
from flashtalker_jax.audio.clip import Clip, open_clip
from flashtalker_jax.audio.features import num_video_frames
from flashtalker_jax.audio.windowed import rows_of
from flashtalker_jax.audio.io import default_audio_config
from flashtalker_jax.errors import ConfigError

FEATURE_KINDS = ("log_mel", "wav2vec2")


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """kind: "log_mel" or "wav2vec2"; config: audio feature config; model: the
    LoadedWav2Vec2 (load_wav2vec2(...)[0]) for wav2vec2; cache_dir: per-clip .npy cache
    of `features` (None: compute every time)."""
    kind: str
    config: ml_collections.ConfigDict = dataclasses.field(default_factory=default_audio_config)
    model: Any = None
    cache_dir: str | os.PathLike | None = None

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ConfigError(f"features={self.kind!r}: use one of {FEATURE_KINDS}")
        if self.kind == "wav2vec2" and self.model is None:
            raise ConfigError("features='wav2vec2' needs the model returned by load_wav2vec2")

    @classmethod
    def load(cls, kind: str, wav2vec2_dir: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None) -> "FeatureExtractor":
        """The extractor of a motion task (task.features, task.wav2vec2_dir, task.feature_cache)."""
        model = None
        if kind == "wav2vec2":
            # Imported here so log-mel users do not load JAX/Flax.
            from flashtalker_jax.audio.wav2vec2 import load_wav2vec2
            model = load_wav2vec2(wav2vec2_dir)[0]
        return cls(kind, default_audio_config(), model, cache_dir or None)

    @property
    def sample_rate(self) -> int:
        return self.model.preprocessor.sampling_rate if self.kind == "wav2vec2" else self.config.sample_rate

    def features(self, audio: Clip | str | os.PathLike, fps: float) -> np.ndarray:
        """Whole-clip features on the video-step grid, (steps_per_frame * n_frames, D) float32,
        n_frames = round(duration * fps)."""
        if self.cache_dir is None:
            return self._compute(audio, fps)
        path = audio.path if isinstance(audio, Clip) else Path(audio)
        entry = Path(self.cache_dir) / f"{cache.cache_key(path, self.kind, self.config, fps, self.model)}.npy"
        return cache.read_or_write(entry, lambda: self._compute(audio, fps))

    def rows(self, audio: Clip | str | os.PathLike, fps: float, steps_per_frame: int):
        """(AudioRows of features, n feature frames) for streamed inference."""

        clip = open_clip(audio, self.config)
        if self.kind == "log_mel":
            rows = self.features(clip, fps)
            n = rows.shape[0] // steps_per_frame
            return rows_of(rows[:steps_per_frame * n], steps_per_frame, n), n
        from flashtalker_jax.audio.windowed import Wav2Vec2Rows

        waveform = clip.samples(self.sample_rate)
        n = num_video_frames(waveform.shape[0], self.sample_rate, fps)
        return Wav2Vec2Rows(self.model, waveform, n, fps, steps_per_frame), n

    def _compute(self, audio: Clip | str | os.PathLike, fps: float) -> np.ndarray:
        clip = open_clip(audio, self.config)
        if self.kind == "log_mel":
            return clip.log_mel(fps, self.config)
        from flashtalker_jax.audio.wav2vec2 import wav2vec2_features, wav2vec2_to_video_steps

        waveform = clip.samples(self.sample_rate)
        n_frames = num_video_frames(waveform.shape[0], self.sample_rate, fps)
        return wav2vec2_to_video_steps(wav2vec2_features(self.model, waveform), self.model.settings,
                                       self.sample_rate, n_frames, fps, self.config.steps_per_frame)
