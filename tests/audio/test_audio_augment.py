"""Recording-condition augmentation in the feature domain (flashtalker_jax/audio/augment.py).

Independent reference for the mixing rule: the front end itself, run on the mixed
waveform g * speech + noise. Powers of independent signals add only in expectation, so
the comparison is statistical (median and mean error over all rows and channels).
"""
import numpy as np
import pytest
import ml_collections

from flashtalker_jax.audio.augment import (DB_TO_LOG_POWER, NOISE_KINDS, RecordingAugment, coloured_noise,
                                           mix_log_power, speech_level)
from flashtalker_jax.audio.features import log_mel_features
from flashtalker_jax.audio.io import default_audio_config

from audio_helpers import speech_like

RATE = 16000


def settings(prob=1.0, kinds=NOISE_KINDS):
    return ml_collections.ConfigDict(dict(prob=prob, gain_db=(-12.0, 12.0), snr_db=(10.0, 50.0),
                                          noise_kinds=kinds))


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_unit_variance_and_its_spectral_slope(kind, slope):
    noise = coloured_noise(kind, 2 ** 16, np.random.default_rng(0))
    assert noise.dtype == np.float32 and abs(float(np.std(noise)) - 1.0) < 1e-4
    power = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
    freqs = np.arange(power.shape[0])
    band = (freqs > 100) & (freqs < 20000)
    # Least-squares slope of log power over log frequency: 0, -1, -2 (measured within 0.02).
    fitted = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert abs(fitted - slope) < 0.1


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("gain, noise_var", [(0.5, 1e-3), (2.0, 1e-2)])
def test_feature_domain_mix_matches_the_front_end_on_the_mixed_waveform(kind, gain, noise_var):
    config = default_audio_config()
    rng = np.random.default_rng(1)
    speech, noise = speech_like(2.0, RATE, seed=2), coloured_noise(kind, 2 * RATE, rng)
    mixed = log_mel_features(gain * speech + np.sqrt(noise_var) * noise, RATE, 25.0, config)
    emulated = mix_log_power(log_mel_features(speech, RATE, 25.0, config), log_mel_features(noise, RATE, 25.0, config),
                             np.log(gain ** 2), np.log(noise_var), np.log(config.log_mel.log_floor))
    error = emulated - mixed
    # Measured: median |error| 0.05-0.18 nats, mean 0.02-0.05 (log of a mean vs mean of a log).
    # Treating log powers as adding (instead of powers) misses by several nats.
    assert float(np.median(np.abs(error))) < 0.3
    assert abs(float(np.mean(error))) < 0.1


def test_augmentation_is_deterministic_per_seed_and_fills_silence_with_a_noise_floor():
    config = default_audio_config()
    floor = np.log(config.log_mel.log_floor)
    clean = log_mel_features(np.concatenate([speech_like(1.0, RATE, seed=4), np.zeros(2 * RATE, np.float32)]),
                             RATE, 25.0, config)
    silent = clean[:, -1] <= floor + 1e-6
    assert silent.sum() > 80          # digital silence sits at the log floor, like espeak pauses
    augment = RecordingAugment(settings(), config)
    level = speech_level(clean)
    first = augment(clean, level, np.random.default_rng(7))
    assert np.array_equal(first, augment(clean, level, np.random.default_rng(7)))
    assert not np.array_equal(first, augment(clean, level, np.random.default_rng(8)))
    # Pauses now hold noise between 10 and 50 dB (+- the noise's own spread) under the speech level.
    lifted = first[silent, -1]
    assert np.all(lifted > floor + 1.0)
    assert level - 50 * DB_TO_LOG_POWER - 12 * DB_TO_LOG_POWER - 3.0 < np.median(lifted) < level + 12 * DB_TO_LOG_POWER


def test_prob_zero_returns_the_rows_unchanged_and_channels_are_checked():
    config = default_audio_config()
    clean = log_mel_features(speech_like(0.5, RATE), RATE, 25.0, config)
    augment = RecordingAugment(settings(prob=0.0, kinds=("white",)), config)
    assert augment(clean, speech_level(clean), np.random.default_rng(0)) is clean
    with pytest.raises(ValueError, match="channels"):
        augment(clean[:, :10], 0.0, np.random.default_rng(0))
