"""mp4 writer/reader: frame count, content and muxed audio duration survive a decode.

The audio check decodes the mp4's AAC track back with the bundled ffmpeg and requires the
exact input sample count: the AAC encoder works in whole 1024-sample frames, but the mp4
edit list records priming and padding, so a correct mux decodes to the original length.
Pixel tolerance 6/255 mean absolute: H.264 at crf 18 with 4:2:0 chroma on smooth ramps.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from flashtalker_jax import video
from flashtalker_jax.errors import InputFileError


def _frames(n: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Smooth moving ramps: every frame distinct, nothing H.264 finds hard."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(n)[:, None, None]
    r = (x[None] * 4 + t * 3) % 256
    g = np.broadcast_to((y * 6) % 256, r.shape)
    b = np.full(r.shape, 128)
    return np.stack([r, g, b], -1).astype(np.uint8)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (8000, 1)])
def test_roundtrip_frames_and_audio(tmp_path, rate, channels):
    seconds, fps = 1.0, 25
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.ones(channels)
    wav = tmp_path / "in.wav"
    soundfile.write(wav, wave, rate)
    frames = _frames(round(seconds * fps))
    out = tmp_path / "out.mp4"
    with video.mp4_writer(out, 48, 32, fps, audio_path=wav) as write:
        write(frames[:10])          # a batch
        for frame in frames[10:]:   # and single frames
            write(frame)
    assert video.count_frames(out) == len(frames)
    decoded = np.stack(list(video.iter_frames(out)))
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(float) - frames).mean() < 6
    samples, out_rate = video.decode_audio(out)
    assert out_rate == rate and samples.shape[1] == channels
    assert samples.shape[0] == wave.shape[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.mp4"]


def test_failure_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(ZeroDivisionError):
        with video.mp4_writer(out, 32, 32, 25) as write:
            write(_frames(3, 32, 32))
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_error_leaves_no_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        with video.mp4_writer(out, 32, 32, 25, audio_path=bad) as write:
            write(_frames(3, 32, 32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


def test_bad_sizes_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="even"):
        with video.mp4_writer(tmp_path / "x.mp4", 31, 32, 25):
            pass
    with pytest.raises(ValueError, match="uint8"):
        with video.mp4_writer(tmp_path / "x.mp4", 32, 32, 25) as write:
            write(np.zeros((1, 16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputFileError, match="not found"):
        video.count_frames(tmp_path / "missing.mp4")
    silent = tmp_path / "silent.mp4"
    with video.mp4_writer(silent, 32, 32, 25) as write:
        write(_frames(2, 32, 32))
    with pytest.raises(InputFileError, match="no decodable audio"):
        video.decode_audio(silent)
