"""One audio file decoded once and shared by every consumer of a `speak` call.

`speak` validates the file by decoding it; the motion run's features and the avatar's
log-mel drive need the same 16 kHz waveform, and with the project's one feature config
(configs/audio_features.py) the same log-mel rows. `Clip` holds the waveform and memoises
log-mel per (fps, config), so a call decodes + resamples once and computes log-mel once
instead of three and two times (on a 10-minute file each pass is hundreds of ms before the
first frame). Consumers also accept a plain path (`open_clip`), which decodes it then.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import ml_collections
import numpy as np

# Module imports (not names) so tests can count decodes and log-mel passes.
from flashtalker_jax.audio import features, io


@dataclasses.dataclass(eq=False)
class Clip:
    """path: the audio file; waveform: mono float32 (S,) at `rate` (audio.io.load_audio)."""
    path: Path
    waveform: np.ndarray
    rate: int
    config: ml_collections.ConfigDict
    _log_mel: dict = dataclasses.field(default_factory=dict, repr=False)

    def samples(self, rate: int) -> np.ndarray:
        """The waveform at `rate`: the decoded one, or the file decoded again at another rate
        (resampling the already-resampled waveform would give other samples)."""
        if rate == self.rate:
            return self.waveform
        return io.load_audio(self.path, rate, self.config)

    def log_mel(self, fps: float, config: ml_collections.ConfigDict | None = None) -> np.ndarray:
        """audio.features.log_mel_features of the clip, computed once per (fps, config)."""
        config = self.config if config is None else config
        key = (float(fps), config.to_json())
        if key not in self._log_mel:
            rate = config.sample_rate
            self._log_mel[key] = features.log_mel_features(self.samples(rate), rate, fps, config)
        return self._log_mel[key]


def open_clip(audio: Clip | str | os.PathLike, config: ml_collections.ConfigDict | None = None) -> Clip:
    """`audio` itself when already a Clip, else the file decoded at io.SAMPLE_RATE;
    InputFileError for missing, corrupt or empty audio."""
    if isinstance(audio, Clip):
        return audio
    config = io.default_audio_config() if config is None else config
    return Clip(Path(audio), io.load_audio(audio, io.SAMPLE_RATE, config), io.SAMPLE_RATE, config)
