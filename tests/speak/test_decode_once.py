"""`speak` decodes the audio file once and computes log-mel once (audio/clip.py), and the
shared waveform gives exactly the parameters of the file-path entry points, which decode the
file on their own (as every consumer did before): same samples in, same arithmetic, so the
saved parameters must be bit-identical (tolerance 0)."""
from __future__ import annotations

import numpy as np
import soundfile

from flashtalker_jax.audio import features, io
from flashtalker_jax.pipeline.speaker import FLAME_KEYS
from flashtalker_jax.pipeline.stream import speak


def _wav(path, seconds, rate):
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 170 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)), rate)
    return path


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)
    return calls


def test_speak_decodes_once_and_matches_the_path_entry_points(speaker, tmp_path, monkeypatch):
    wav = _wav(tmp_path / "in.wav", 2.2, 22050)  # resampled to 16 kHz: the costly decode
    assert speaker.avatar.audio_dim  # the avatar takes the log-mel drive: two log-mel consumers
    decodes = _counting(monkeypatch, io, "_read")
    log_mels = _counting(monkeypatch, features, "log_mel_features")

    def run(motion_fn, out):  # speaker.speak, also saving the avatar's audio drive
        speak(wav, tmp_path / f"{out}.mp4", motion_fn=motion_fn, render_fn=speaker.avatar.render_fn,
              width=32, height=32, fps=speaker.fps, batch_size=speaker.batch_size,
              save_params=tmp_path / f"{out}.npz", param_keys=FLAME_KEYS + ("audio",), show_progress=False)
        return np.load(tmp_path / f"{out}.npz")
    a = run(speaker.motion_fn, "shared")
    assert len(decodes) == 1 and len(log_mels) == 1

    # Reference: the motion stage handed the file path, decoding it again by itself.
    decodes.clear()
    b = run(lambda clip, n_frames: speaker.motion_fn(str(clip.path), n_frames), "per_path")
    assert len(decodes) == 2  # speak's validation + the path handed to the motion stage
    assert sorted(a.files) == sorted(b.files) and "audio" in a.files
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_audio_drive_and_motion_features_take_a_path(speaker, tiny_runs, tmp_path):
    """Other callers (flashtalker_jax/eval) pass file paths: same rows as from a decoded clip."""
    from flashtalker_jax.pipeline.avatar import audio_drive
    from flashtalker_jax.audio.clip import open_clip

    wav = _wav(tmp_path / "in.wav", 1.0, 16000)
    clip = open_clip(wav)
    np.testing.assert_array_equal(audio_drive(wav, 25.0, 25), audio_drive(clip, 25.0, 25))
    from_path = [c["expr"] for c in speaker.motion_fn(wav, 25)]
    from_clip = [c["expr"] for c in speaker.motion_fn(clip, 25)]
    np.testing.assert_array_equal(np.concatenate(from_path), np.concatenate(from_clip))
