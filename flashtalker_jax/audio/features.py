"""Log-mel + energy features aligned to video frames, and rate conversion of feature tracks.

Alignment convention (shared by every audio feature in the project): a clip of S samples
at rate r drives n_frames = round(S / r * fps) video frames; its features have
T_a = steps_per_frame * n_frames rows, and row i describes the audio centred at
t_i = (i + 0.5) / (steps_per_frame * fps) seconds. With the defaults (25 fps, 2 steps per
frame) video frame k owns rows 2k and 2k + 1, 20 ms apart, and its 40 ms span
[k/25, (k+1)/25) is exactly the span of those two rows.

`log_mel_features` layout, (T_a, n_mels + 1) float32:
  [:, :n_mels]  natural log of the mel power spectrogram (slaney mel scale and norm)
  [:, n_mels]   natural log of the frame energy (mean squared sample over n_fft samples)
"""
from __future__ import annotations

import librosa
import ml_collections
import numpy as np

from flashtalker_jax.audio.io import FPS, SAMPLE_RATE, default_audio_config


def num_video_frames(num_samples: int, sample_rate: int, fps: float) -> int:
    """Video frames driven by `num_samples` of audio: round(duration * fps)."""
    return int(round(num_samples / sample_rate * fps))


def step_times(n_frames: int, fps: float, steps_per_frame: int) -> np.ndarray:
    """Centre time (s) of each of the steps_per_frame * n_frames feature rows, (T_a,)."""
    return (np.arange(steps_per_frame * n_frames) + 0.5) / (steps_per_frame * fps)


def resample_track(features: np.ndarray, source_times: np.ndarray, target_times: np.ndarray) -> np.ndarray:
    """Linearly interpolate a feature track (T_src, D) from its row times to target times.

    Rows before the first or after the last source time repeat the end rows. Where a
    target time equals a source time the source row is returned unchanged.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != source_times.shape[0]:
        raise ValueError(f"features {features.shape} do not match {source_times.shape[0]} source times")
    position = np.interp(target_times, source_times, np.arange(source_times.shape[0], dtype=np.float64))
    # Times computed two ways (offset + j / rate vs (i + 0.5) / step rate) differ by an ulp:
    # snap to the source row so on-grid tracks come back bit-exact.
    nearest = np.round(position)
    position = np.where(np.abs(position - nearest) < 1e-6, nearest, position)
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, source_times.shape[0] - 1)
    weight = (position - lower)[:, None]
    return ((1.0 - weight) * features[lower] + weight * features[upper]).astype(features.dtype)


def to_video_steps(features: np.ndarray, source_rate: float, first_time: float, n_frames: int,
                   fps: float = FPS, steps_per_frame: int = 2) -> np.ndarray:
    """Resample a track sampled at `source_rate` Hz (row j centred at first_time + j / rate)
    to exactly steps_per_frame * n_frames rows on the video-step grid, (T_a, D)."""
    source_times = first_time + np.arange(features.shape[0]) / source_rate
    return resample_track(features, source_times, step_times(n_frames, fps, steps_per_frame))


def log_mel_features(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE, fps: float = FPS,
                     config: ml_collections.ConfigDict | None = None) -> np.ndarray:
    """Log-mel + log-energy features of a mono waveform, 2 rows per video frame.

    Args:
      waveform: (S,) float mono samples at `sample_rate` (the rate configs expect).
      sample_rate: Hz; must equal `config.sample_rate` (load with `load_audio`).
      fps: video frame rate the rows are aligned to.
      config: audio feature config (default configs/audio_features.py).
    Returns:
      (steps_per_frame * n_frames, n_mels + 1) float32, layout in the module docstring.
    """
    config = default_audio_config() if config is None else config
    mel = config.log_mel
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform (S,), got shape {waveform.shape}")
    if sample_rate != config.sample_rate:
        raise ValueError(f"waveform is at {sample_rate} Hz but the feature config expects "
                         f"{config.sample_rate} Hz; load it with load_audio(path, {config.sample_rate})")
    n_frames = num_video_frames(waveform.shape[0], sample_rate, fps)
    steps = config.steps_per_frame
    hop = int(round(sample_rate / (steps * fps)))
    # Pad so analysis window j is centred at (j + 0.5) * hop samples: with an exact hop
    # (16 kHz, 25 fps -> 320) the rows land on the step grid without interpolation.
    # Zeros (not reflection) so no audio is invented at the edges.
    left = mel.n_fft // 2 - hop // 2
    right = mel.n_fft + steps * hop
    padded = np.pad(waveform, (left, right))
    power = librosa.feature.melspectrogram(
        y=padded, sr=sample_rate, n_fft=mel.n_fft, hop_length=hop, win_length=mel.win_length,
        window="hann", center=False, power=2.0, n_mels=mel.n_mels, fmin=mel.fmin, fmax=mel.fmax,
        htk=False, norm="slaney")
    energy = librosa.feature.rms(y=padded, frame_length=mel.n_fft, hop_length=hop, center=False) ** 2
    track = np.log(np.maximum(np.concatenate([power, energy], axis=0), mel.log_floor)).T
    first_time = (mel.n_fft / 2 - left) / sample_rate
    return to_video_steps(track, sample_rate / hop, first_time, n_frames, fps, steps).astype(np.float32)
