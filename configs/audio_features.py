"""Audio feature parameters: log-mel front end, video alignment, wav2vec2 resampling.

Consumed by `flashtalker_jax.audio.features.log_mel_features` and
`flashtalker_jax.audio.extractor.FeatureExtractor` (their default when no config is passed).
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Every waveform is brought to this rate (and mono) before any feature is computed.
    c.sample_rate = 16000
    # Video alignment: feature step i is centred at (i + 0.5) / (steps_per_frame * fps) s,
    # so video frame k owns steps 2k and 2k+1 (40 ms frames, 20 ms steps at 25 fps).
    c.fps = 25.0
    c.steps_per_frame = 2

    c.log_mel = ml_collections.ConfigDict()
    c.log_mel.n_fft = 512          # 32 ms analysis window at 16 kHz (zero-padded hann of win_length)
    c.log_mel.win_length = 400     # 25 ms hann window
    c.log_mel.n_mels = 80
    c.log_mel.fmin = 55.0          # below the lowest voice fundamental, above mains hum
    c.log_mel.fmax = 7600.0        # just under Nyquist of 16 kHz audio
    c.log_mel.log_floor = 1e-10    # power floor before the natural log (-23.0 after log)

    # Input checks on loaded audio (peak amplitude in [-1, 1]).
    c.checks = ml_collections.ConfigDict()
    c.checks.silence_peak = 1e-4       # peak below this: warn that the clip is silent
    c.checks.clip_level = 0.999        # samples at or above this magnitude count as clipped
    c.checks.clip_fraction = 1e-3      # warn when more than this fraction of samples clip
    return c
