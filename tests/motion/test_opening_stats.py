"""Speech/silence split of mouth-opening traces used by the real-speech check of eval-a2e."""
import numpy as np

from flashtalker_jax.motion.evaluate import opening_by_speech, speech_frames


def test_speech_frames_finds_the_pause_in_a_noisy_recording():
    rate, fps = 16000, 25.0
    rng = np.random.default_rng(0)
    t = np.arange(3 * rate) / rate
    voiced = 0.3 * np.sin(2 * np.pi * 200 * t) * ((t < 1.0) | (t >= 2.0))
    waveform = (voiced + 1e-3 * rng.standard_normal(t.shape)).astype(np.float32)   # -50 dB noise floor
    speaking = speech_frames(waveform, rate, 75, fps)
    np.testing.assert_array_equal(speaking, (np.arange(75) < 25) | (np.arange(75) >= 50))


def test_opening_by_speech_by_hand():
    stats = opening_by_speech(np.array([1.0, 2.0, 10.0, 12.0]), np.array([False, False, True, True]))
    assert stats == {"speech_fraction": 0.5, "opening_speech_mean_mm": 11.0, "opening_silence_mean_mm": 1.5,
                     "opening_silence_p90_mm": 1.9}
    assert opening_by_speech(np.array([3.0]), np.array([True]))["opening_silence_mean_mm"] is None
