"""Audio rows on the video-step grid, served window by window to the motion models.

`AudioRows(first_frame, num_frames)` returns the (steps_per_frame * num_frames, D) rows of
those frames, zero outside the clip: `rows_of` over a whole-clip array, and
`Wav2Vec2Rows`, which computes wav2vec2 features as the motion windows ask for them.

Log-mel rows are a few floats per frame and cost milliseconds: the extractor
(audio/extractor.py) computes them for the whole clip. wav2vec2 is a transformer with
global self-attention: on a 10-minute file one pass would be O(T^2) in memory and far
longer than the clips it was pretrained on, so
`Wav2Vec2Rows` runs it on fixed-length segments (a chunk of frames plus a margin of audio
on each side, shifted inwards at the clip's ends so every segment has one compiled shape)
and keeps at most two chunks of rows. The margin (2.5 s by default) covers the positional
convolution's reach (128 rows = 2.56 s, half on each side) with room to spare; attention
beyond the segment is cut, which is why the margin rows are computed and then dropped.
The waveform is normalised with whole-clip statistics first, exactly as the whole-clip
path does, so a clip no longer than one segment gives the whole-clip features.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from flashtalker_jax.audio.features import resample_track, step_times

# audio_rows(first_frame, num_frames) -> (s * num_frames, D), zero rows outside the clip
AudioRows = Callable[[int, int], np.ndarray]


def window_audio(audio: np.ndarray, start: int, num_frames: int, steps_per_frame: int) -> np.ndarray:
    """Audio rows of frames [start, start + num_frames), zero rows outside the clip. (s*n, D)."""
    out = np.zeros((steps_per_frame * num_frames, audio.shape[1]), np.float32)
    lo, hi = steps_per_frame * start, steps_per_frame * (start + num_frames)
    src_lo, src_hi = max(lo, 0), min(hi, audio.shape[0])
    if src_hi > src_lo:
        out[src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
    return out


def rows_of(audio: np.ndarray, steps_per_frame: int, num_frames: int) -> AudioRows:
    """An AudioRows over a whole-clip feature array (steps_per_frame * num_frames, D)."""
    if audio.shape[0] != steps_per_frame * num_frames:
        raise ValueError(f"audio has {audio.shape[0]} rows, expected {steps_per_frame} x {num_frames} frames")
    return lambda start, n: window_audio(audio, start, n, steps_per_frame)




class Wav2Vec2Rows:
    """AudioRows of wav2vec2 features on the video-step grid.

    waveform: mono (S,) at the model's rate; rows for frames outside [0, n_frames) are zero.
    """

    def __init__(self, loaded, waveform: np.ndarray, n_frames: int, fps: float, steps_per_frame: int,
                 chunk_seconds: float = 20.0, margin_seconds: float = 2.5):
        from flashtalker_jax.audio.wav2vec2 import normalise_waveform

        self.rate = loaded.preprocessor.sampling_rate
        self.waveform = normalise_waveform(waveform, loaded.preprocessor)
        # Already normalised with the clip's statistics: segments must not be re-normalised.
        self.loaded = dataclasses.replace(loaded, preprocessor=dataclasses.replace(loaded.preprocessor,
                                                                                   do_normalize=False))
        self.n_frames, self.fps, self.steps = n_frames, fps, steps_per_frame
        self.segment = int(round((chunk_seconds + 2 * margin_seconds) * self.rate))
        if self.waveform.shape[0] <= self.segment:
            self.segment, self.chunk_frames = self.waveform.shape[0], n_frames
        else:
            self.chunk_frames = max(1, int(round(chunk_seconds * fps)))
        self.margin = int(round(margin_seconds * self.rate))
        self.chunks: dict[int, np.ndarray] = {}  # at most the two most recently used

    def chunk(self, index: int) -> np.ndarray:
        """Rows of frames [index F, index F + F) (fewer in the last chunk), (s * f, hidden)."""
        if index not in self.chunks:
            from flashtalker_jax.audio.wav2vec2 import wav2vec2_features

            first = index * self.chunk_frames
            frames = min(self.chunk_frames, self.n_frames - first)
            start = int(round(first / self.fps * self.rate)) - self.margin
            start = min(max(start, 0), self.waveform.shape[0] - self.segment)
            feats = wav2vec2_features(self.loaded, self.waveform[start:start + self.segment])
            settings = self.loaded.settings
            times = (start + settings.receptive_field / 2 + settings.hop_length * np.arange(feats.shape[0])) / self.rate
            targets = step_times(first + frames, self.fps, self.steps)[self.steps * first:]
            if len(self.chunks) >= 2:  # windows move forward: the lowest chunk is done with
                del self.chunks[min(self.chunks)]
            self.chunks[index] = resample_track(feats, times, targets)
        return self.chunks[index]

    def __call__(self, start: int, num_frames: int) -> np.ndarray:
        out = np.zeros((self.steps * num_frames, self.loaded.settings.hidden_size), np.float32)
        lo, hi = max(start, 0), min(start + num_frames, self.n_frames)
        for index in range(lo // self.chunk_frames, -(-hi // self.chunk_frames)):
            first = index * self.chunk_frames
            a, b = max(lo, first), min(hi, first + self.chunk_frames)
            if b > a:
                out[self.steps * (a - start):self.steps * (b - start)] = \
                    self.chunk(index)[self.steps * (a - first):self.steps * (b - first)]
        return out
