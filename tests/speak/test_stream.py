"""Streaming in `speak`: motion is consumed window by window, the first frame is written after
the first window, motion never runs more than one chunk + one batch ahead of rendering (so
memory does not grow with the clip), and the frame count is exact."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from flashtalker_jax import video
from flashtalker_jax.pipeline.stream import rebatch, speak


class Probe:
    """Wraps a MotionFn and a RenderFn, recording how far motion has run ahead of rendering."""

    def __init__(self, motion_fn, render_fn):
        self.motion_fn, self.render_fn = motion_fn, render_fn
        self.chunk_rows, self.rendered, self.ahead, self.chunks_before_first_frame = [], 0, [], None

    def motion(self, audio_path, n_frames):
        for chunk in self.motion_fn(audio_path, n_frames):
            self.chunk_rows.append(next(iter(chunk.values())).shape[0])
            yield chunk

    def render(self, batch):
        if self.chunks_before_first_frame is None:
            self.chunks_before_first_frame = len(self.chunk_rows)
        self.ahead.append(sum(self.chunk_rows) - self.rendered)
        self.rendered += next(iter(batch.values())).shape[0]
        return self.render_fn(batch)


def _wav(path, seconds, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 200 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)), rate)
    return path


@pytest.mark.slow
def test_speak_streams_the_motion_windows(speaker, tmp_path):
    """The tiny Audio2Param run has 100-frame crops: windows of 75 new frames (Predictor)."""
    wav = _wav(tmp_path / "in.wav", 3.4)  # 85 frames: two windows
    probe = Probe(speaker.motion_fn, speaker.avatar.render_fn)
    params = tmp_path / "p.npz"
    result = speak(wav, tmp_path / "out.mp4", motion_fn=probe.motion, render_fn=probe.render, width=32,
                   height=32, fps=25.0, batch_size=speaker.batch_size, save_params=params, show_progress=False)
    assert result.frames == 85 and video.count_frames(tmp_path / "out.mp4") == 85
    assert sum(probe.chunk_rows) == 85 and max(probe.chunk_rows) <= 75
    assert probe.chunks_before_first_frame == 1  # only the first window's motion
    assert max(probe.ahead) < max(probe.chunk_rows) + speaker.batch_size
    saved = np.load(params)
    assert saved["expr"].shape == (85, speaker.avatar.n_expr) and saved["mouth_opening_mm"].shape == (85,)
    jaw = saved["jaw_pose"]
    assert np.all(np.isfinite(jaw)) and np.ptp(jaw) > 0


def test_a_long_clip_holds_one_chunk_and_one_batch(tmp_path):
    """90 s of audio (2250 frames) with a windowed stand-in motion: the motion held never
    exceeds one chunk + one batch, however long the clip."""
    wav = _wav(tmp_path / "long.wav", 90.0)
    window = 100

    def motion_fn(audio_path, n_frames):
        for start in range(0, n_frames, window):
            rows = np.arange(start, min(start + window, n_frames), dtype=np.float32)[:, None]
            yield {"expr": rows, "jaw_pose": np.repeat(rows, 3, 1)}

    def render_fn(batch):
        value = (batch["expr"][:, 0] % 256).astype(np.uint8)
        return np.broadcast_to(value[:, None, None, None], (value.shape[0], 8, 8, 3)), batch["expr"][:, 0]

    probe = Probe(motion_fn, render_fn)
    result = speak(wav, tmp_path / "out.mp4", motion_fn=probe.motion, render_fn=probe.render, width=8,
                   height=8, fps=25.0, batch_size=16, save_params=tmp_path / "p.npz", show_progress=False)
    assert result.frames == 2250 == sum(probe.chunk_rows)
    assert probe.chunks_before_first_frame == 1 and max(probe.ahead) < window + 16
    np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["mouth_opening_mm"], np.arange(2250))


def test_rebatch_pads_the_last_batch_and_checks_the_count():
    chunks = [{"x": np.arange(a, b)[:, None]} for a, b in ((0, 3), (3, 3), (3, 10))]
    out = list(rebatch(iter(chunks), 4, 10))
    assert [(s, c) for s, c, _ in out] == [(0, 4), (4, 4), (8, 2)]
    np.testing.assert_array_equal(out[-1][2]["x"][:, 0], [8, 9, 9, 9])
    with pytest.raises(ValueError, match="returned 10 frames, expected 11"):
        list(rebatch(iter(chunks), 4, 11))
    with pytest.raises(ValueError, match="more than 9 frames"):
        list(rebatch(iter(chunks), 4, 9))
    with pytest.raises(ValueError, match="disagree"):
        list(rebatch(iter([{"x": np.zeros((2, 1)), "y": np.zeros((3, 1))}]), 4, 2))
