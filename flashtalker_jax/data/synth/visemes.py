"""Phonemes (espeak-ng IPA) -> visemes -> per-frame mouth tracks, with coarticulation.

Each IPA symbol maps to a viseme: targets for five mouth channels and a dominance weight.
Channels: `jaw` (jaw opening, radians), `open` (lip opening beyond the jaw), `round`
(pucker), `spread` (lip stretch), `press` (lips pressed together).

Coarticulation follows the dominance model of Cohen & Massaro (1993): at time t every
phoneme k pulls each channel towards its target with weight
    D_k(t) = alpha_k * exp(-(d_k(t) / tau)^2),
where d_k(t) is the distance from t to phoneme k's interval (0 inside it). The channel
value is sum_k D_k T_k / sum_k D_k; pauses pull towards a closed, relaxed mouth.
Lip closure for bilabials (p, b, m) is a hard articulatory goal rather than a blend: a
closure envelope (1 inside each bilabial, raised-cosine ramps of `ramp` seconds outside)
scales jaw and lip opening to zero and drives `press`, so the lips meet even between two
open vowels, as they must for the sound to be made.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

CHANNELS = ("jaw", "open", "round", "spread", "press")


@dataclasses.dataclass(frozen=True)
class Viseme:
    name: str
    jaw: float
    open: float
    round: float
    spread: float
    press: float
    dominance: float

    def targets(self) -> np.ndarray:
        return np.array([getattr(self, c) for c in CHANNELS], np.float64)


#                     name          jaw   open  round spread press dominance
VISEMES = {v.name: v for v in [
    Viseme("rest",              0.00, 0.00, 0.00, 0.00, 0.00, 1.0),
    Viseme("bilabial",          0.00, 0.00, 0.00, 0.00, 1.00, 3.0),
    Viseme("labiodental",       0.03, 0.05, 0.00, 0.10, 0.30, 4.0),
    Viseme("dental",            0.06, 0.25, 0.00, 0.20, 0.00, 2.0),
    Viseme("alveolar",          0.05, 0.22, 0.00, 0.25, 0.00, 1.5),
    Viseme("postalveolar",      0.06, 0.25, 0.60, 0.00, 0.00, 2.0),
    Viseme("velar",             0.09, 0.30, 0.00, 0.10, 0.00, 1.0),
    Viseme("glottal",           0.10, 0.35, 0.00, 0.00, 0.00, 0.5),
    Viseme("rhotic",            0.06, 0.25, 0.45, 0.00, 0.00, 1.5),
    Viseme("labial_approx",     0.04, 0.15, 1.00, 0.00, 0.00, 4.0),
    Viseme("palatal",           0.05, 0.20, 0.00, 0.45, 0.00, 1.5),
    Viseme("open_vowel",        0.32, 1.00, 0.00, 0.15, 0.00, 2.0),
    Viseme("mid_vowel",         0.18, 0.65, 0.00, 0.20, 0.00, 1.5),
    Viseme("front_close_vowel", 0.08, 0.35, 0.00, 0.85, 0.00, 2.0),
    Viseme("round_close_vowel", 0.08, 0.25, 1.00, 0.00, 0.00, 3.0),
    Viseme("round_mid_vowel",   0.20, 0.55, 0.80, 0.00, 0.00, 2.5),
]}

# IPA symbols (espeak-ng's English inventory plus common extras) -> viseme name.
PHONEME_TO_VISEME: Mapping[str, str] = {
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["θ", "ð"], "dental"),
    **dict.fromkeys(["t", "d", "n", "l", "s", "z", "ɾ", "ʔ", "ɬ", "ᵻ"], "alveolar"),
    **dict.fromkeys(["ʃ", "ʒ", "tʃ", "dʒ"], "postalveolar"),
    **dict.fromkeys(["k", "ɡ", "g", "ŋ", "x"], "velar"),
    **dict.fromkeys(["h"], "glottal"),
    **dict.fromkeys(["r", "ɹ", "ɜ", "ɚ", "ɝ"], "rhotic"),
    **dict.fromkeys(["w"], "labial_approx"),
    **dict.fromkeys(["j"], "palatal"),
    **dict.fromkeys(["a", "ɑ", "æ", "ʌ", "ɐ", "ä"], "open_vowel"),
    **dict.fromkeys(["e", "ɛ", "ə", "ɘ"], "mid_vowel"),
    **dict.fromkeys(["i", "ɪ", "y"], "front_close_vowel"),
    **dict.fromkeys(["u", "ʊ", "ʉ"], "round_close_vowel"),
    **dict.fromkeys(["o", "ɔ", "ɒ"], "round_mid_vowel"),
}
IGNORED_MARKS = "ːˑ̩ˈˌ-_|"


def split_phoneme(phoneme: str) -> list[str]:
    """Split an espeak IPA phoneme ('aɪ', 'əl', 'tʃ', 'iː') into table symbols, longest first."""
    text = "".join(ch for ch in phoneme if ch not in IGNORED_MARKS)
    symbols, i = [], 0
    while i < len(text):
        for size in (2, 1):
            if text[i:i + size] in PHONEME_TO_VISEME:
                symbols.append(text[i:i + size])
                i += size
                break
        else:
            i += 1  # a diacritic or symbol without a mouth shape of its own
    return symbols


def viseme_of(symbol: str) -> Viseme:
    return VISEMES[PHONEME_TO_VISEME[symbol]]


def viseme_segments(phonemes: Sequence[tuple[str, float, float]]) -> list[tuple[Viseme, float, float]]:
    """Phoneme intervals -> viseme intervals; diphthongs split their interval evenly."""
    segments = []
    for phoneme, start, end in phonemes:
        symbols = split_phoneme(phoneme)
        for j, symbol in enumerate(symbols):
            a = start + (end - start) * j / len(symbols)
            b = start + (end - start) * (j + 1) / len(symbols)
            segments.append((viseme_of(symbol), a, b))
    return segments


def coarticulate(segments: Sequence[tuple[Viseme, float, float]], times: np.ndarray,
                 tau: float) -> np.ndarray:
    """Dominance-weighted blend of viseme targets at `times` (s) -> (len(times), 5).

    Gaps between segments (pauses, silence) are filled with the rest viseme.
    """
    times = np.asarray(times, np.float64)
    filled = _fill_gaps(list(segments), float(times.min(initial=0.0)), float(times.max(initial=0.0)))
    starts = np.array([s for _, s, _ in filled])[:, None]
    ends = np.array([e for _, _, e in filled])[:, None]
    alpha = np.array([v.dominance for v, _, _ in filled])[:, None]
    targets = np.stack([v.targets() for v, _, _ in filled])            # (K, 5)
    distance = np.maximum(0.0, np.maximum(starts - times[None], times[None] - ends))  # (K, T)
    weights = alpha * np.exp(-np.square(distance / tau))
    return (weights.T @ targets) / weights.sum(0)[:, None]


def _fill_gaps(segments, t0: float, t1: float):
    rest = VISEMES["rest"]
    segments = sorted(segments, key=lambda s: s[1])
    out, cursor = [], min(t0, segments[0][1] if segments else t0)
    for viseme, start, end in segments:
        if start > cursor + 1e-9:
            out.append((rest, cursor, start))
        out.append((viseme, start, end))
        cursor = max(cursor, end)
    out.append((rest, cursor, max(cursor, t1) + 1e-3))
    return out


def closure_envelope(segments: Sequence[tuple[Viseme, float, float]], times: np.ndarray,
                     ramp: float) -> np.ndarray:
    """1 inside bilabial segments, raised-cosine falloff over `ramp` s, 0 elsewhere -> (T,)."""
    times = np.asarray(times, np.float64)
    envelope = np.zeros_like(times)
    for viseme, start, end in segments:
        if viseme.name != "bilabial":
            continue
        distance = np.maximum(0.0, np.maximum(start - times, times - end))
        window = np.where(distance < ramp, 0.5 * (1.0 + np.cos(np.pi * distance / ramp)), 0.0)
        envelope = np.maximum(envelope, window)
    return envelope


def frame_times(num_frames: int, fps: float, lead_seconds: float = 0.0) -> np.ndarray:
    """Time (s) each frame shows: its centre, shifted by the visual lead (mouth before sound)."""
    return (np.arange(num_frames) + 0.5) / fps + lead_seconds


def mouth_tracks(phonemes: Sequence[tuple[str, float, float]], num_frames: int, fps: float,
                 tau: float, ramp: float, lead_seconds: float) -> dict[str, np.ndarray]:
    """Per-frame mouth channels {name: (num_frames,)} from timed phonemes."""
    segments = viseme_segments(phonemes)
    times = frame_times(num_frames, fps, lead_seconds)
    tracks = dict(zip(CHANNELS, coarticulate(segments, times, tau).T))
    closure = closure_envelope(segments, times, ramp)
    for name in ("jaw", "open", "round", "spread"):
        tracks[name] = tracks[name] * (1.0 - closure)
    tracks["press"] = np.maximum(tracks["press"], closure)
    return {name: tracks[name].astype(np.float32) for name in CHANNELS}
