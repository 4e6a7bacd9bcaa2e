"""The speak pipeline's driver: audio file -> motion windows -> rendered batches -> mp4.

Stages (each timed on its own, wall clock, device work finished before the clock stops):
  audio    read + validate the file, decoded once (`audio.clip.open_clip`: the waveform
           and its log-mel rows are shared by the motion features and the avatar's audio
           drive), frame count = round(s * fps)
  motion   `motion_fn(clip, n_frames)` -> an iterator of track chunks {name: (t, k)}
           for consecutive frames (FLAME parameters expr, jaw_pose, rotation, ... plus any
           extra per-frame drive input), one model window at a time; n_frames rows in all
  render   `render_fn(batch)` on `batch_size` frames at a time -> uint8 frames (B, H, W, 3)
           and mouth opening in mm (B,); the last batch is padded to the same size so one
           compiled shape serves the whole clip
  encode   frames streamed into ffmpeg (H.264) with the input audio muxed (`video.py`)
Streaming: a batch is rendered and written as soon as enough motion rows have arrived, so
the first frame needs only the first motion window, and memory holds one motion window and
one batch of frames beside the decoded waveform and its log-mel rows (the per-frame track
is kept only when `save_params` asks for it). The mp4 only appears when every stage succeeded (a failure
leaves no partial file); the `save_params` npz is written after it.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import soundfile

from flashtalker_jax.errors import InputFileError
from flashtalker_jax.audio.clip import Clip, open_clip
from flashtalker_jax.utils.files import atomic_path
from flashtalker_jax.utils.progress import progress
from flashtalker_jax.video import mp4_writer

Track = Mapping[str, np.ndarray]
# (the decoded clip, or a path to decode, n_frames) -> chunks of consecutive frames
MotionFn = Callable[[Clip | Path, int], Iterable[Track]]
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
    """Seconds of audio in the file at its own rate (after `open_clip` validated it)."""
    info = soundfile.info(os.fspath(path))
    return info.frames / info.samplerate


def frame_count(seconds: float, fps: float) -> int:
    return int(round(seconds * fps))


def check_chunk(chunk: Track, source: str) -> int:
    """Rows of one track chunk; every entry must have the same leading length."""
    rows = {k: np.shape(v)[0] if np.ndim(v) >= 1 else None for k, v in chunk.items()}
    if len(set(rows.values())) != 1 or None in rows.values():
        raise ValueError(f"{source} returned a chunk whose arrays disagree on the frame count: {rows}")
    return next(iter(rows.values()))


def rebatch(chunks: Iterable[Track], batch_size: int, n_frames: int, source: str = "motion"
            ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """Yield (start, count, batch) as soon as `batch_size` rows have arrived from `chunks`;
    every batch is padded (edge rows) to batch_size. Raise ValueError unless the chunks hold
    exactly n_frames rows."""
    pending: list[Track] = []
    held = start = 0

    def take(count: int) -> dict[str, np.ndarray]:
        nonlocal pending, held
        joined = {k: np.concatenate([np.asarray(c[k]) for c in pending]) for k in pending[0]}
        pending = [{k: v[count:] for k, v in joined.items()}]
        held -= count
        pad = batch_size - count
        return {k: np.pad(v[:count], [(0, pad)] + [(0, 0)] * (v.ndim - 1), mode="edge")
                for k, v in joined.items()}

    for chunk in chunks:
        rows = check_chunk(chunk, source)
        if start + held + rows > n_frames:
            raise ValueError(f"{source} returned more than {n_frames} frames")
        pending.append(chunk)
        held += rows
        while held >= batch_size:
            yield start, batch_size, take(batch_size)
            start += batch_size
    if start + held != n_frames:
        raise ValueError(f"{source} returned {start + held} frames, expected {n_frames}")
    if held:
        yield start, held, take(held)


def timed(iterable: Iterable, seconds: dict[str, float], stage: str) -> Iterator:
    """Iterate, adding the time spent producing each item to seconds[stage]."""
    it = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            seconds[stage] += time.perf_counter() - t0
            return
        seconds[stage] += time.perf_counter() - t0
        yield item


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
    clip = open_clip(audio_path)  # raises InputFileError for missing, corrupt or empty audio
    duration = audio_duration(audio_path)
    n_frames = frame_count(duration, fps)
    if n_frames < 1:
        raise InputFileError(audio_path, f"audio lasts {duration * 1000:.1f} ms, shorter than "
                                         f"half a video frame at {fps:g} fps")
    seconds["audio"] = time.perf_counter() - t0

    saved: list[dict[str, np.ndarray]] = []  # per batch, only when save_params asks for it
    with mp4_writer(out_path, width, height, fps, audio_path=audio_path) as write:
        bar = progress(total=n_frames, desc="speak", unit="frame", disable=not show_progress)
        motion = timed(motion_fn(clip, n_frames), seconds, "motion")
        for start, count, batch in rebatch(motion, batch_size, n_frames):
            t0 = time.perf_counter()
            frames, opening = render_fn(batch)
            frames, opening = np.asarray(frames)[:count], np.asarray(opening)[:count]
            t1 = time.perf_counter()
            write(frames)
            seconds["render"] += t1 - t0
            seconds["encode"] += time.perf_counter() - t1
            if save_params is not None:
                keys = tuple(batch) if param_keys is None else param_keys
                saved.append({"mouth_opening_mm": opening, **{k: batch[k][:count] for k in keys}})
            if start == 0:
                first_frame = t1 - start_all
            bar.update(count)
        bar.close()
        t0 = time.perf_counter()
    seconds["encode"] += time.perf_counter() - t0  # ffmpeg finishing the file
    if save_params is not None:
        with atomic_path(save_params) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, fps=np.float32(fps), **{k: np.concatenate([s[k] for s in saved]) for k in saved[0]})
    return SpeakResult(out_path, n_frames, duration, seconds, time.perf_counter() - start_all, first_frame)
