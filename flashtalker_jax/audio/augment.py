"""Recording-condition augmentation of log-power features (log-mel + log-energy).

Why: procedural training speech (espeak) is digitally clean. Its pauses are exact zeros, so
every log-power channel sits at the front end's log floor there (-23.0 with the default
1e-10), while real recordings keep a noise floor some 30-40 dB under the speech (measured on
shared/data/audio: energy -12 to -15 in pauses, about -5 in speech). A model that has only
heard clean audio reads such a floor as quiet speech and keeps the mouth open in pauses.

What: the augmentation emulates, in the feature domain, what gain and additive noise do to
the waveform before the front end:
- gain g: power scales by g^2, so every log-power channel shifts by log(g^2);
- additive noise independent of the speech: powers add in expectation (the cross term has
  zero mean), so a channel becomes logaddexp(f, n) with n the same channel of the noise.
  n is a row of a real noise track (white, pink or brown, made once through the same
  front end), so its row-to-row fluctuation is that of real noise, shifted so the noise
  energy sits `snr_db` under the clip's speech level (95th percentile of the energy row);
- the result is clamped at the log floor, as the front end clamps.
Each example draws its own gain, SNR, noise kind and noise offset from the generator it is
given, so the augmentation is deterministic per seed.
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from flashtalker_jax.audio.features import log_mel_features

NOISE_KINDS = ("white", "pink", "brown")
DB_TO_LOG_POWER = np.log(10.0) / 10.0   # 1 dB of power in natural-log units


def coloured_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise with a 1/f^k power spectrum (white k=0, pink k=1, brown k=2), (S,)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r}: use one of {NOISE_KINDS}")
    exponent = NOISE_KINDS.index(kind)
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.arange(spectrum.shape[0], dtype=np.float64)
    freqs[0] = 1.0                      # keep DC finite; it is removed below
    spectrum = spectrum / freqs ** (exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, num_samples)
    return (noise / np.std(noise)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class NoiseBank:
    """Feature tracks of unit-variance noises: tracks (K, R, D), one per kind in `kinds`."""
    kinds: tuple[str, ...]
    tracks: np.ndarray
    log_floor: float


def make_noise_bank(audio_config: ml_collections.ConfigDict, kinds=NOISE_KINDS, seconds: float = 8.0,
                    seed: int = 0) -> NoiseBank:
    """Log-mel + energy tracks of `seconds` of each noise kind, through log_mel_features."""
    rng = np.random.default_rng(seed)
    rate = audio_config.sample_rate
    tracks = [log_mel_features(coloured_noise(k, int(seconds * rate), rng), rate, audio_config.fps, audio_config)
              for k in kinds]
    return NoiseBank(tuple(kinds), np.stack(tracks), float(np.log(audio_config.log_mel.log_floor)))


def mix_log_power(rows: np.ndarray, noise_rows: np.ndarray, gain: float, noise_shift: float,
                  log_floor: float) -> np.ndarray:
    """Features of (g x speech + noise) from the two tracks' features (T, D): log power adds
    log g^2 = `gain` to the speech, `noise_shift` to the noise, powers add, floor clamps."""
    return np.maximum(np.logaddexp(rows + gain, noise_rows + noise_shift), log_floor).astype(np.float32)


def speech_level(features: np.ndarray) -> float:
    """The loud end of a clip's energy row (last column): its 95th percentile, log power."""
    return float(np.percentile(features[:, -1], 95))


class RecordingAugment:
    """Callable (rows (T, D) raw log-power, reference_level, rng) -> augmented rows (T, D).

    settings (configs: task.augment): prob (chance an example is augmented at all),
    gain_db (lo, hi), snr_db (lo, hi) and noise_kinds. An unaugmented example is returned
    unchanged (the generator is still advanced the same amount, so later draws do not
    depend on which examples were augmented).
    """

    def __init__(self, settings: ml_collections.ConfigDict, audio_config: ml_collections.ConfigDict):
        self.settings = settings
        self.bank = make_noise_bank(audio_config, tuple(settings.noise_kinds))

    def __call__(self, rows: np.ndarray, reference_level: float, rng: np.random.Generator) -> np.ndarray:
        s, bank = self.settings, self.bank
        if rows.shape[1] != bank.tracks.shape[2]:
            raise ValueError(f"features have {rows.shape[1]} channels, the noise bank {bank.tracks.shape[2]} "
                             "(augmentation needs the log-mel + energy front end)")
        apply = rng.random() < s.prob
        gain = rng.uniform(*s.gain_db) * DB_TO_LOG_POWER
        snr = rng.uniform(*s.snr_db) * DB_TO_LOG_POWER
        kind = int(rng.integers(len(bank.kinds)))
        offset = int(rng.integers(bank.tracks.shape[1]))
        if not apply:
            return rows
        noise_rows = np.take(bank.tracks[kind], np.arange(offset, offset + rows.shape[0]), axis=0, mode="wrap")
        # Unit-variance noise has energy ~1 (log 0): the shift puts it snr under the (gained) speech.
        return mix_log_power(rows, noise_rows, gain, reference_level + gain - snr, bank.log_floor)
