"""The speak pipeline's driver: audio file -> per-frame track -> rendered batches -> mp4.

Stages (each timed on its own, wall clock, device work finished before the clock stops):
  audio    read + validate the file (`audio.io.load_audio`), frame count = round(s * fps)
  motion   `motion_fn(audio_path, n_frames)` -> track {name: (T, k)}: FLAME parameters
           per frame (expr, jaw_pose, rotation, ...) plus any extra per-frame drive input
  render   `render_fn(batch)` on `batch_size` frames at a time -> uint8 frames (B, H, W, 3)
           and mouth opening in mm (B,); the last batch is padded to the same size so one
           compiled shape serves the whole clip
  encode   frames streamed into ffmpeg (H.264) with the input audio muxed (`video.py`)
Memory: the track is O(T x params) (a 10-minute clip at 25 fps is 15k rows of a few
hundred floats); frames exist one batch at a time. The mp4 only appears when every stage
succeeded (a failure leaves no partial file); the `save_params` npz is written after it.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import soundfile

from flashtalker_jax.audio.io import load_audio
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path
from flashtalker_jax.utils.progress import progress
from flashtalker_jax.video import mp4_writer

Track = Mapping[str, np.ndarray]
MotionFn = Callable[[Path, int], Track]
RenderFn = Callable[[Track], tuple[np.ndarray, np.ndarray]]
STAGES = ("audio", "motion", "render", "encode")


@dataclasses.dataclass(frozen=True)
class SpeakResult:
    out: Path
    frames: int
    audio_seconds: float
    stage_seconds: dict[str, float]
    total_seconds: float
    first_frame_seconds: float  # from the call to the first rendered batch (streaming latency)

    def stage_fps(self) -> dict[str, float]:
        """Frames per second of each stage alone and of the whole run."""
        out = {k: self.frames / v if v > 0 else float("inf") for k, v in self.stage_seconds.items()}
        out["total"] = self.frames / self.total_seconds
        return out

    def summary(self) -> str:
        fps = self.stage_fps()
        stages = ", ".join(f"{k} {self.stage_seconds[k]:.2f} s ({fps[k]:.1f} fps)" for k in STAGES)
        return (f"{self.out}: {self.frames} frames, {self.audio_seconds:.2f} s of audio, "
                f"{self.total_seconds:.2f} s total ({fps['total']:.1f} fps); {stages}")


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in the file at its own rate (after `load_audio` validated it)."""
    info = soundfile.info(os.fspath(path))
    return info.frames / info.samplerate


def frame_count(seconds: float, fps: float) -> int:
    return int(round(seconds * fps))


def check_track(track: Track, n_frames: int, source: str) -> None:
    bad = {k: v.shape for k, v in track.items() if np.ndim(v) < 1 or np.shape(v)[0] != n_frames}
    if bad:
        raise ValueError(f"{source} returned arrays without {n_frames} frames: {bad}")


def batches(track: Track, batch_size: int):
    """Yield (start, count, batch) with every batch padded (edge rows) to batch_size."""
    n = next(iter(track.values())).shape[0]
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        pad = batch_size - count
        yield start, count, {k: np.pad(np.asarray(v[start:start + count]),
                                       [(0, pad)] + [(0, 0)] * (np.ndim(v) - 1), mode="edge")
                             for k, v in track.items()}


def speak(audio_path: str | os.PathLike, out_path: str | os.PathLike, *, motion_fn: MotionFn,
          render_fn: RenderFn, width: int, height: int, fps: float, batch_size: int,
          save_params: str | os.PathLike | None = None, param_keys: tuple[str, ...] | None = None,
          show_progress: bool = True) -> SpeakResult:
    """Run every stage on one audio file (module docstring); return counts and timings.

    `param_keys`: the track entries written to `save_params` (default: all) beside
    `mouth_opening_mm` (T,).
    """
    audio_path, out_path = Path(audio_path), Path(out_path)
    seconds = {k: 0.0 for k in STAGES}
    start_all = t0 = time.perf_counter()
    load_audio(audio_path)  # raises InputFileError for missing, corrupt or empty audio
    duration = audio_duration(audio_path)
    n_frames = frame_count(duration, fps)
    if n_frames < 1:
        raise InputFileError(audio_path, f"audio lasts {duration * 1000:.1f} ms, shorter than "
                                         f"half a video frame at {fps:g} fps")
    seconds["audio"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    track = motion_fn(audio_path, n_frames)
    check_track(track, n_frames, "motion")
    seconds["motion"] = time.perf_counter() - t0

    mouth = np.zeros(n_frames, np.float32)
    with mp4_writer(out_path, width, height, fps, audio_path=audio_path) as write:
        bar = progress(total=n_frames, desc="speak", unit="frame", disable=not show_progress)
        for start, count, batch in batches(track, batch_size):
            t0 = time.perf_counter()
            frames, opening = render_fn(batch)
            frames, opening = np.asarray(frames)[:count], np.asarray(opening)[:count]
            t1 = time.perf_counter()
            write(frames)
            seconds["render"] += t1 - t0
            seconds["encode"] += time.perf_counter() - t1
            mouth[start:start + count] = opening
            if start == 0:
                first_frame = t1 - start_all
            bar.update(count)
        bar.close()
        t0 = time.perf_counter()
    seconds["encode"] += time.perf_counter() - t0  # ffmpeg finishing the file
    if save_params is not None:
        keys = tuple(track) if param_keys is None else param_keys
        with atomic_path(save_params) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, mouth_opening_mm=mouth, fps=np.float32(fps),
                         **{k: np.asarray(track[k]) for k in keys})
    return SpeakResult(out_path, n_frames, duration, seconds, time.perf_counter() - start_all, first_frame)
