"""log_mel_features and the video-step grid.

Independent reference: transformers.audio_utils (its own numpy STFT, window and slaney
mel filter bank, no librosa), fed the same padded signal, so the parity test checks the
spectral numbers and the alignment tests check the padding/grid separately.
"""
import numpy as np
import pytest
from transformers import audio_utils

from flashtalker_jax.audio import log_mel_features, num_video_frames, to_video_steps
from flashtalker_jax.audio.features import resample_track, step_times
from flashtalker_jax.audio.io import default_audio_config

from audio_helpers import speech_like

RATE = 16000


@pytest.mark.parametrize("num_samples, fps, expected", [
    (16000, 25.0, 25), (16000 * 12 + 100, 25.0, 300), (16000 * 12 + 400, 25.0, 301),
    (47999, 30.0, 90), (0, 25.0, 0), (8000, 29.97, 15)])
def test_num_video_frames_rounds_duration_times_fps(num_samples, fps, expected):
    assert num_video_frames(num_samples, RATE, fps) == expected


@pytest.mark.parametrize("num_samples, fps", [(16000, 25.0), (16000 + 1234, 25.0), (20000, 30.0), (5000, 24.0)])
def test_two_rows_per_video_frame(num_samples, fps):
    features = log_mel_features(speech_like(num_samples / RATE, RATE), RATE, fps)
    config = default_audio_config()
    assert features.shape == (2 * num_video_frames(num_samples, RATE, fps), config.log_mel.n_mels + 1)
    assert features.dtype == np.float32 and np.all(np.isfinite(features))


def reference_log_mel(waveform: np.ndarray, config) -> np.ndarray:
    """transformers.audio_utils log-mel + numpy log-energy on the padding log_mel_features uses."""
    mel, hop = config.log_mel, RATE // (config.steps_per_frame * config.fps)
    hop = int(hop)
    padded = np.pad(waveform, (mel.n_fft // 2 - hop // 2, mel.n_fft + config.steps_per_frame * hop))
    window = audio_utils.window_function(mel.win_length, "hann", periodic=True, frame_length=mel.n_fft)
    filters = audio_utils.mel_filter_bank(mel.n_fft // 2 + 1, mel.n_mels, mel.fmin, mel.fmax, RATE,
                                          norm="slaney", mel_scale="slaney")
    log_mel = audio_utils.spectrogram(padded, window, frame_length=mel.n_fft, hop_length=hop,
                                      fft_length=mel.n_fft, power=2.0, center=False, mel_filters=filters,
                                      mel_floor=mel.log_floor, log_mel="log", dtype=np.float64)
    starts = np.arange(log_mel.shape[1]) * hop
    energy = np.array([np.mean(padded[s:s + mel.n_fft].astype(np.float64) ** 2) for s in starts])
    return np.concatenate([log_mel, np.log(np.maximum(energy, mel.log_floor))[None]], axis=0).T


def test_log_mel_matches_independent_reference():
    config = default_audio_config()
    waveform = speech_like(1.0, RATE, seed=3)
    features = log_mel_features(waveform, RATE, 25.0, config)
    reference = reference_log_mel(waveform, config)[: features.shape[0]]
    # librosa works in float32 (the reference in float64): measured max difference 7e-7 on
    # log values of order 1-12, so 1e-5 leaves float32 headroom while any window, filter,
    # normalisation or one-sample frame offset error shows up at 1e-2 or more.
    np.testing.assert_allclose(features, reference, atol=1e-5)


def test_rows_are_centred_on_the_step_grid():
    """A tone switched on at exactly 1.0 s: the energy jump is centred between rows 49 and 50."""
    t = np.arange(2 * RATE) / RATE
    waveform = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 440.0 * t), 0.0).astype(np.float32)
    energy = log_mel_features(waveform, RATE, 25.0)[:, -1]
    # Rows 49/50 are centred at 0.99 s / 1.01 s: symmetric about the onset, the windows see
    # equal silence/tone, so their linear energies sum to that of a full-tone row.
    linear = np.exp(energy.astype(np.float64))
    assert linear[40] < 1e-8 and linear[60] == pytest.approx(0.125, rel=0.01)  # A^2 / 2
    assert linear[49] + linear[50] == pytest.approx(linear[60], rel=0.02)
    assert linear[49] < linear[50]


def test_mel_peak_follows_the_tone():
    config = default_audio_config()
    t = np.arange(RATE) / RATE
    low = log_mel_features((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), RATE, 25.0, config)
    high = log_mel_features((0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), RATE, 25.0, config)
    mel_centres = np.linspace(0, 1, config.log_mel.n_mels)  # monotone in frequency is all we need
    assert mel_centres[np.argmax(low[25, :-1])] < mel_centres[np.argmax(high[25, :-1])]


def test_wrong_rate_or_shape_is_refused():
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        log_mel_features(np.zeros(8000, np.float32), 8000)
    with pytest.raises(ValueError, match="mono"):
        log_mel_features(np.zeros((2, 8000), np.float32))


def test_to_video_steps_is_identity_on_the_grid_and_linear_between():
    track = np.arange(20, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], np.float32)
    same = to_video_steps(track, 50.0, 0.01, n_frames=10, fps=25.0)
    np.testing.assert_array_equal(same, track)
    shifted = to_video_steps(track, 50.0, 0.0, n_frames=10, fps=25.0)  # grid is half a row later
    np.testing.assert_allclose(shifted[:-1, 0], np.arange(19) + 0.5, atol=1e-6)
    assert shifted[-1, 0] == 19.0  # past the last row: held


def test_resample_track_checks_shapes():
    with pytest.raises(ValueError, match="do not match"):
        resample_track(np.zeros((5, 2)), np.arange(4.0), step_times(2, 25.0, 2))
