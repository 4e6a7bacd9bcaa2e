"""`speak` end to end on a tiny avatar: decoded mp4 frame count = round(duration x fps), the
muxed audio decodes to the input's exact sample count, rate and channels (see
tests/test_video.py for why exact), per-frame parameters saved; bad inputs give clear
errors and leave no mp4 behind."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from flashtalker_jax import video
from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import InputFileError, ModelFileError


def _tone(path, rate, channels, seconds):
    t = np.arange(int(round(rate * seconds))) / rate
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2)[:, None]
    soundfile.write(path, np.repeat(wave, channels, 1), rate)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("rate,channels,seconds", [(16000, 1, 0.6), (44100, 2, 0.5), (8000, 1, 0.7)])
def test_speak_frames_audio_params(speaker, tmp_path, rate, channels, seconds):
    wav = _tone(tmp_path / "in.wav", rate, channels, seconds)
    out, params = tmp_path / "out.mp4", tmp_path / "params.npz"
    result = speaker.speak(wav, out, save_params=params, show_progress=False)
    n = round(seconds * 25)
    assert result.frames == n and video.count_frames(out) == n
    frames = np.stack(list(video.iter_frames(out)))
    assert frames.shape == (n, 32, 32, 3) and frames.std() > 1  # a rendered head, not a blank
    samples, out_rate = video.decode_audio(out)
    assert (out_rate, samples.shape) == (rate, (int(round(rate * seconds)), channels))
    saved = np.load(params)
    assert saved["mouth_opening_mm"].shape == (n,) and np.all(np.isfinite(saved["mouth_opening_mm"]))
    assert saved["expr"].shape == (n, speaker.avatar.n_expr) and saved["jaw_pose"].shape == (n, 3)
    assert "audio" not in saved.files
    assert set(result.stage_seconds) == {"audio", "motion", "render", "encode"}


def test_bad_audio_leaves_nothing(speaker, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1)), 16000)
    for bad, message in ((corrupt, "cannot decode"), (empty, "no samples"),
                         (tmp_path / "missing.wav", "not found")):
        with pytest.raises(InputFileError, match=message):
            speaker.speak(bad, tmp_path / "out.mp4", save_params=tmp_path / "p.npz", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.wav", "empty.wav"]


def test_render_failure_leaves_no_mp4(speaker, tmp_path):
    wav = _tone(tmp_path / "in.wav", 16000, 1, 0.3)

    def failing_render(batch):
        raise RuntimeError("render failed")

    from flashtalker_jax.pipeline.stream import speak
    with pytest.raises(RuntimeError, match="render failed"):
        speak(wav, tmp_path / "out.mp4", motion_fn=speaker.motion_fn, render_fn=failing_render,
              width=32, height=32, fps=25.0, batch_size=4, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_bad_avatar_folders(tiny_runs, tmp_path, capsys):
    from flashtalker_jax.pipeline.avatar import load_avatar_renderer

    missing = tmp_path / "missing_state"
    shutil.copytree(tiny_runs["avatar"], missing)
    (missing / "state.npz").unlink()
    with pytest.raises(ModelFileError, match="state.npz is missing"):
        load_avatar_renderer(missing)
    # Written by a version whose config lacks a field this code reads.
    old_config = tmp_path / "old_config"
    shutil.copytree(tiny_runs["avatar"], old_config)
    config = json.loads((old_config / "config.json").read_text())
    del config["avatar"]["feature_dim"]
    (old_config / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="incompatible version"):
        load_avatar_renderer(old_config)
    # An avatar written by an incompatible version: its variables do not match this code's.
    other = tmp_path / "other_version"
    shutil.copytree(tiny_runs["avatar"], other)
    with np.load(other / "state.npz") as saved:
        arrays = {("renamed_" + k if i == 0 else k): saved[k] for i, k in enumerate(saved.files)}
    np.savez(other / "state.npz", **arrays)
    wav = _tone(tmp_path / "in.wav", 16000, 1, 0.2)
    out = tmp_path / "out.mp4"
    assert main(["speak", "--avatar", str(other), "--a2e", str(tiny_runs["a2e"]), "--audio", str(wav),
                 "--out", str(out), "--quiet"]) == 2
    assert "do not match" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_bench_speak_cli(tiny_runs, tmp_path):
    report = tmp_path / "r.json"
    assert main(["bench", "speak", "--avatar", str(tiny_runs["avatar"]), "--a2e", str(tiny_runs["a2e"]),
                 "--seconds", "0.3", "--size", "32", "--batch", "4", "--report", str(report)]) == 0
    (row,) = json.loads(report.read_text())["rows"]
    assert row["batch"] == 4 and row["frames"] == 8 and row["size"] == 32
    assert 0 < row["render_fps"] and 0 < row["pipeline_fps"] <= row["render_fps"]
    assert 0 < row["first_frame_ms"]
