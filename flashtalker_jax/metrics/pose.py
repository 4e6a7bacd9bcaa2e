"""Head-pose motion metrics: generated pose tracks against the real one (issue 20).

All take pose tracks (T, P) (rotation + translation columns, any units) and a `scale` (P,)
dividing each column first (the identity's pose std), so radians and metres count alike.

frechet_distance   Frechet distance between Gaussians fitted to per-frame pose-velocity
                   features of two tracks (FID's formula on motion, as FDD / FGD do):
                   |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), the square root by an
                   eigendecomposition of S1^1/2 S2 S1^1/2 (symmetric PSD, so stable where
                   scipy.linalg.sqrtm of the non-symmetric S1 S2 returns complex noise)
velocity_ratio     mean |velocity| / the real one's (1 = as lively; 0 = still)
acceleration_ratio mean |acceleration| / the real one's
jitter             mean |third difference| (jerk) per frame: high-frequency shake
beat_alignment     Bailando's beat-align score: for each pose-speed peak (a "motion
                   beat"), exp(-d^2 / (2 sigma^2)) with d the distance in frames to the
                   nearest audio onset; averaged over motion beats (0 when none)
audio_onsets       onset frames of a waveform (librosa's spectral-flux onset detector)
"""
from __future__ import annotations

import numpy as np
import scipy.signal


def _scaled(track: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    track = np.asarray(track, np.float64)
    if track.ndim != 2:
        raise ValueError(f"pose track must be (T, P), got {track.shape}")
    return track if scale is None else track / np.asarray(scale, np.float64)


def velocity(track, scale=None) -> np.ndarray:
    return np.diff(_scaled(track, scale), axis=0)


def gaussian_frechet(mu1, s1, mu2, s2) -> float:
    """|mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^1/2), via the symmetric form (module docstring)."""
    vals, vecs = np.linalg.eigh(s1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = np.linalg.eigvalsh(root1 @ s2 @ root1)
    cross = np.sum(np.sqrt(np.clip(middle, 0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def frechet_distance(generated, real, scale=None) -> float:
    """Frechet distance of the per-frame velocity distributions (T - 1, P) of two tracks
    (they may differ in length: the real track of a held-out clip vs a generated one)."""
    a, b = velocity(generated, scale), velocity(real, scale)
    return gaussian_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def mean_speed(track, scale=None, order: int = 1) -> float:
    return float(np.linalg.norm(np.diff(_scaled(track, scale), n=order, axis=0), axis=1).mean())


def velocity_ratio(generated, real, scale=None) -> float:
    return mean_speed(generated, scale, 1) / max(mean_speed(real, scale, 1), 1e-12)


def acceleration_ratio(generated, real, scale=None) -> float:
    return mean_speed(generated, scale, 2) / max(mean_speed(real, scale, 2), 1e-12)


def jitter(track, scale=None) -> float:
    return mean_speed(track, scale, 3)


def motion_beats(track, scale=None, min_gap: int = 5) -> np.ndarray:
    """Frames of pose-speed peaks (local maxima of |velocity| at least `min_gap` frames apart
    and above the track's mean speed: a still track has none)."""
    speed = np.linalg.norm(velocity(track, scale), axis=1)
    if speed.size < 3 or np.ptp(speed) < 1e-9:
        return np.zeros(0, np.int64)
    peaks, _ = scipy.signal.find_peaks(speed, distance=min_gap, height=speed.mean())
    return peaks + 1   # velocity i is between frames i and i + 1


def beat_alignment(motion_beat_frames, onset_frames, sigma: float = 3.0) -> float:
    beats = np.asarray(motion_beat_frames, np.float64)
    onsets = np.asarray(onset_frames, np.float64)
    if beats.size == 0 or onsets.size == 0:
        return 0.0
    d = np.abs(beats[:, None] - onsets[None, :]).min(1)
    return float(np.mean(np.exp(-d ** 2 / (2 * sigma ** 2))))


def audio_onsets(waveform: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """Onset frames (at `fps`) of a mono waveform."""
    import librosa

    hop = int(round(sample_rate / (2 * fps)))   # two onset-envelope rows per video frame
    times = librosa.onset.onset_detect(y=np.asarray(waveform, np.float32), sr=sample_rate, hop_length=hop,
                                       units="time")
    return np.round(np.asarray(times) * fps).astype(np.int64)


def pose_scores(generated, real, onsets, scale=None) -> dict[str, float]:
    """Every metric of one generated track against the real one (same length)."""
    if np.shape(generated) != np.shape(real):
        raise ValueError(f"generated {np.shape(generated)} and real {np.shape(real)} differ")
    return {"frechet_velocity": frechet_distance(generated, real, scale),
            "velocity_ratio": velocity_ratio(generated, real, scale),
            "acceleration_ratio": acceleration_ratio(generated, real, scale),
            "beat_alignment": beat_alignment(motion_beats(generated, scale), onsets),
            "jitter": jitter(generated, scale),
            "std_ratio": float(np.mean(_scaled(generated, scale).std(0)) / max(np.mean(_scaled(real, scale).std(0)), 1e-12))}
