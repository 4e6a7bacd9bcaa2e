"""load_audio: conversion messages, input checks, real clips."""
import warnings

import numpy as np
import pytest
import soundfile

from flashtalker_jax.audio import AudioConversionWarning, AudioQualityWarning, load_audio, num_video_frames
from flashtalker_jax.errors import InputFileError

from audio_helpers import shared_clip, speech_like, write_wav


def test_16k_mono_loads_without_messages(tmp_path):
    data = speech_like(0.5, 16000)
    path = write_wav(tmp_path / "a.wav", data, 16000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        waveform = load_audio(path)
    assert waveform.dtype == np.float32 and waveform.shape == (8000,)
    np.testing.assert_array_equal(waveform, data)


@pytest.mark.parametrize("rate, channels", [(8000, 1), (44100, 2)])
def test_other_rates_and_channels_are_converted_with_a_message(tmp_path, rate, channels):
    path = write_wav(tmp_path / "in.wav", speech_like(1.0, rate, channels=channels), rate)
    with pytest.warns(AudioConversionWarning) as record:
        waveform = load_audio(path, 16000)
    messages = " | ".join(str(w.message) for w in record)
    assert f"resampling {rate} Hz -> 16000 Hz" in messages
    assert ("downmixing 2 channels" in messages) == (channels == 2)
    assert waveform.shape == (16000,) and waveform.dtype == np.float32
    # The 180 Hz fundamental survives resampling: the spectrum peaks there (1 Hz bins).
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(int(np.argmax(spectrum)) - 180) <= 1


def test_stereo_downmix_is_the_channel_mean(tmp_path):
    stereo = np.stack([np.full(1600, 0.2), np.full(1600, -0.1)], axis=1).astype(np.float32)
    path = write_wav(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    with pytest.warns(AudioConversionWarning, match="downmixing"):
        waveform = load_audio(path)
    np.testing.assert_allclose(waveform, 0.05, atol=1e-7)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found") as info:
        load_audio(tmp_path / "nope.wav")
    assert "nope.wav" in str(info.value)


@pytest.mark.parametrize("content", [b"this is not audio" * 100, b""], ids=["garbage", "zero-bytes"])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "garbage.wav"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match="cannot decode") as info:
        load_audio(path)
    assert "garbage.wav" in str(info.value)


def test_empty_file(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros((0,), np.float32), 16000)
    with pytest.raises(InputFileError, match="no samples"):
        load_audio(path)


def test_nan_samples(tmp_path):
    data = speech_like(0.1, 16000)
    data[100:103] = np.nan
    path = write_wav(tmp_path / "nan.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(InputFileError, match="3 of 1600 samples are NaN") as info:
        load_audio(path)
    assert "nan.wav" in str(info.value)


def test_silence_warns(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(1600, np.float32), 16000)
    with pytest.warns(AudioQualityWarning, match="silent"):
        load_audio(path)


def test_clipping_warns(tmp_path):
    data = np.clip(4.0 * speech_like(0.5, 16000), -1.0, 1.0)
    path = write_wav(tmp_path / "loud.wav", data, 16000, subtype="FLOAT")
    with pytest.warns(AudioQualityWarning, match="clipped"):
        waveform = load_audio(path)
    assert np.max(np.abs(waveform)) <= 1.0


def test_real_48k_stereo_clip_is_converted_and_aligned(shared_data):
    path = shared_clip(shared_data, "accented_english_12s.wav")
    info = soundfile.info(str(path))
    with pytest.warns(AudioConversionWarning) as record:
        waveform = load_audio(path)
    messages = " | ".join(str(w.message) for w in record)
    assert f"resampling {info.samplerate} Hz -> 16000 Hz" in messages
    if info.channels > 1:
        assert f"downmixing {info.channels} channels" in messages
    # Resampling keeps the duration: the video frame count is the same at either rate.
    assert num_video_frames(waveform.shape[0], 16000, 25.0) == num_video_frames(info.frames, info.samplerate, 25.0)


def test_real_16k_mono_clip_loads_unchanged(shared_data):
    path = shared_clip(shared_data, "english_commentary_60s.wav")
    info = soundfile.info(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioConversionWarning)
        waveform = load_audio(path)
    assert waveform.shape == (info.frames,)
    assert np.all(np.isfinite(waveform)) and 0.01 < np.max(np.abs(waveform)) <= 1.0
