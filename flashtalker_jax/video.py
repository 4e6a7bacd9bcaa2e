"""mp4 in/out with imageio-ffmpeg's bundled ffmpeg (H.264 video, AAC audio; no ffprobe).

Writing streams frames into one ffmpeg process (memory stays flat for any length) and
writes to a hidden temporary file renamed into place only when encoding succeeded, so a
failure or interruption never leaves a partial mp4. Reading streams frames one at a time
(decoding a whole mp4 into a list exhausts memory) and decodes the audio track back to
samples so tests can check durations against the input.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path

_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?Audio: .*?, (\d+) Hz, ([^,]+)")
_CHANNELS = {"mono": 1, "stereo": 2}


def check_frame_size(width: int, height: int) -> None:
    """H.264 in yuv420p needs even sides; raise ValueError rather than let ffmpeg rescale."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"video frames must have even, positive sides for H.264 yuv420p, got {width}x{height}")


def _encoder_command(path: str, width: int, height: int, fps: float, audio_path: str | None,
                     crf: int) -> list[str]:
    """ffmpeg reading raw rgb24 frames on stdin (+ an audio file) and writing H.264/AAC mp4."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-nostdin", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(Fraction(fps).limit_denominator()),
           "-i", "-"]
    if audio_path is not None:
        cmd += ["-i", audio_path, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac"]
    return cmd + ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
                  "-movflags", "+faststart", "-v", "error", path]


@contextlib.contextmanager
def mp4_writer(path: str | os.PathLike, width: int, height: int, fps: float,
               audio_path: str | os.PathLike | None = None, crf: int = 18):
    """Yield `write(frames)` taking uint8 (H, W, 3) or (B, H, W, 3) arrays.

    The audio file (any format ffmpeg reads) is muxed as AAC at its own rate and channel
    count and keeps its full length (no `-shortest`). The file appears at `path` only if
    the block and ffmpeg both finish without error; otherwise a RuntimeError carries
    ffmpeg's message.
    """
    check_frame_size(width, height)
    audio = None if audio_path is None else os.fspath(audio_path)
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(_encoder_command(os.fspath(tmp), width, height, fps, audio, crf),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)

        def write(frames: np.ndarray) -> None:
            frames = np.asarray(frames)
            if frames.ndim == 3:
                frames = frames[None]
            if frames.shape[1:] != (height, width, 3) or frames.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (B, {height}, {width}, 3), "
                                 f"got {frames.dtype} {frames.shape}")
            try:
                proc.stdin.write(np.ascontiguousarray(frames).tobytes())
            except BrokenPipeError:
                pass  # ffmpeg died: its message is reported when the writer closes

        try:
            yield write
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        if proc.wait() != 0:
            log.seek(0)
            message = log.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"ffmpeg failed writing {os.fspath(path)} (exit {proc.returncode}): {message}")


def _require(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "video file not found")
    return path


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode frames one at a time as uint8 (H, W, 3)."""
    reader = imageio_ffmpeg.read_frames(_require(path))
    meta = next(reader)
    width, height = meta["size"]
    for raw in reader:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def count_frames(path: str | os.PathLike) -> int:
    """Number of decoded video frames (decodes the stream; exact, not from the header)."""
    return int(imageio_ffmpeg.count_frames_and_secs(_require(path))[0])


def decode_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The first audio stream decoded at its own rate: float32 (S, C) samples and the rate."""
    path = _require(path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path,
           "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    stderr = result.stderr.decode(errors="replace")
    match = _AUDIO_STREAM.search(stderr)
    if result.returncode != 0 or match is None:
        raise InputFileError(path, f"no decodable audio stream ({stderr.strip()[-300:]})")
    rate, layout = int(match.group(1)), match.group(2).strip()
    counted = re.match(r"(\d+) channels", layout)
    channels = _CHANNELS.get(layout) or (int(counted.group(1)) if counted else None)
    if channels is None:
        raise InputFileError(path, f"unsupported audio channel layout {layout!r}")
    samples = np.frombuffer(result.stdout, np.float32)
    return samples.reshape(-1, channels), rate
