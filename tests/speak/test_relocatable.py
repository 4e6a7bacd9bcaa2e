"""Trained artifacts are self-contained and relocatable (issue 15): an avatar folder and a
motion run, exported from a relative data path, copied elsewhere with the training data
deleted, still speak (bit-identical parameters and frames to before the move), evaluate
(cross setting) and benchmark from any working directory. Older avatar folders (format 2)
and damaged copies are refused with the file and the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from flashtalker_jax import video
from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ConfigError, ModelFileError


def _tone(path: Path, seconds: float = 0.44, rate: int = 16000) -> Path:
    t = np.arange(int(round(rate * seconds))) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2, rate)
    return path


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """Build at `origin` from RELATIVE paths (as `flashtalker demo` types them), keep a copy
    of the whole origin (`pristine`: where "before the move" runs, the data beside it), copy
    avatar/ and a2e/ to `elsewhere` and delete the origin."""
    import tiny

    from flashtalker_jax.audio.features import log_mel_features
    from flashtalker_jax.flame import load_flame_model

    base = tmp_path_factory.mktemp("relocate")
    origin = base / "origin"
    origin.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(origin)
        tiny.make_identity(origin, n_frames=5, moving=True)
        rows = log_mel_features(np.zeros(1600, np.float32), 16000, 25.0)
        n_vertices = load_flame_model(Path("identity") / "flame").n_vertices
        tiny.make_avatar(Path("identity"), Path("avatar"), audio_dim=2 * rows.shape[1])
        tiny.make_a2e_run(Path("a2e"), audio_dim=rows.shape[1], n_vertices=n_vertices)
    shutil.copytree(origin, base / "pristine")
    elsewhere = base / "elsewhere"
    shutil.copytree(origin / "avatar", elsewhere / "avatar")
    shutil.copytree(origin / "a2e", elsewhere / "a2e")
    shutil.rmtree(origin)
    cwd = base / "unrelated_cwd"
    cwd.mkdir()
    return {"avatar": elsewhere / "avatar", "a2e": elsewhere / "a2e", "wav": _tone(base / "speech.wav"),
            "pristine": base / "pristine", "cwd": cwd}


def _same_npz(a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_exported_folder_is_self_contained(moved):
    from flashtalker_jax.avatar.export import FORMAT_VERSION, read_avatar_folder

    folder = read_avatar_folder(moved["avatar"])
    assert folder.meta["format_version"] == FORMAT_VERSION == 3
    assert "generic_model.pkl" in folder.meta["flame_sha256"]
    assert folder.track["rotation"].shape == (5, 3) and list(folder.track["timesteps"]) == [0, 1, 2, 3, 4]
    assert np.ptp(folder.track["rotation"], 0).max() > 0     # the moving poses, in time order
    assert folder.view["viewmat"].shape == (4, 4) and int(folder.view["width"]) == 32
    assert Path(folder.task_cfg.data).is_absolute()           # provenance, resolved (and gone now)
    assert not Path(folder.task_cfg.data).exists()


@pytest.mark.slow
def test_speak_after_move_is_bit_identical(moved, tmp_path, monkeypatch):
    from flashtalker_jax.pipeline.speaker import load_speaker

    # Before the move: the folders where they were made, the data beside them. The stored
    # track replays exactly what the data folder's track replays.
    monkeypatch.chdir(moved["pristine"])
    before = {}
    for name, pose_from in (("stored", None), ("data", "identity")):
        speaker = load_speaker("avatar", "a2e", batch_size=4, pose_from=pose_from)
        speaker.speak(moved["wav"], tmp_path / f"{name}.mp4", save_params=tmp_path / f"{name}.npz",
                      show_progress=False)
        before[name] = (tmp_path / f"{name}.npz", tmp_path / f"{name}.mp4")
    stored_npz, stored_mp4 = before["stored"]
    _same_npz(stored_npz, before["data"][0])
    # After: copies elsewhere, the data deleted, run from an unrelated directory.
    monkeypatch.chdir(moved["cwd"])
    out, params = tmp_path / "out.mp4", tmp_path / "params.npz"
    assert main(["speak", "--avatar", str(moved["avatar"]), "--a2e", str(moved["a2e"]),
                 "--audio", str(moved["wav"]), "--out", str(out), "--save-params", str(params),
                 "--batch", "4", "--quiet"]) == 0
    _same_npz(params, stored_npz)
    frames = np.stack(list(video.iter_frames(out)))
    np.testing.assert_array_equal(frames, np.stack(list(video.iter_frames(stored_mp4))))
    assert frames.shape[0] == 11 and frames.std() > 1
    with np.load(params) as saved:   # the moving track is replayed, not one pose
        assert np.ptp(saved["rotation"], 0).max() > 0
    # --still holds the first stored pose.
    still = load_speaker(moved["avatar"], moved["a2e"], batch_size=4, still=True)
    still.speak(moved["wav"], tmp_path / "still.mp4", save_params=tmp_path / "still.npz", show_progress=False)
    with np.load(tmp_path / "still.npz") as saved, np.load(stored_npz) as replayed:
        np.testing.assert_array_equal(saved["rotation"], np.repeat(replayed["rotation"][:1], 11, 0))


@pytest.mark.slow
def test_eval_cross_without_data(moved, tmp_path, monkeypatch):
    from flashtalker_jax.eval.run import NO_GT_FRAMES, evaluate

    monkeypatch.chdir(moved["cwd"])
    t = np.arange(8000) / 16000   # 0.25 s of a voiced-like tone, then silence
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, 0.3 * np.sin(2 * np.pi * 180 * t) * (t < 0.25), 16000)
    report = evaluate(moved["avatar"], None, "cross", a2e=moved["a2e"], sources=[wav],
                      out_dir=tmp_path / "figs", show_progress=False)
    (row,) = report["rows"].values()
    assert report["frames"] == 12 and report["data"] is None
    assert row["stability_flame"]["available"], row["stability_flame"]
    assert row["speech_opening_gap_mm"]["available"], row["speech_opening_gap_mm"]
    assert row["psnr"]["reason"] == NO_GT_FRAMES
    assert (tmp_path / "figs" / "grid.png").is_file() and (tmp_path / "figs" / "curves.png").is_file()
    with pytest.raises(ConfigError, match="pass --data"):   # self needs the ground-truth frames
        evaluate(moved["avatar"], None, "self")


@pytest.mark.slow
def test_bench_after_move(moved, monkeypatch):
    from flashtalker_jax.avatar.bench import bench_avatar
    from flashtalker_jax.pipeline.bench import bench_speak

    monkeypatch.chdir(moved["cwd"])
    (row,) = bench_speak(str(moved["avatar"]), str(moved["a2e"]), seconds=0.2, size=32, batches=[4])
    assert row["frames"] == 5 and row["render_fps"] > 0
    (row,) = bench_avatar(None, [32], [2], configs=(), avatar_dir=moved["avatar"], runs=1)
    assert row["batch"] == 2 and row["fps"] > 0
    with pytest.raises(ConfigError, match="pass --data"):
        bench_avatar(None, [32], [2], avatar_dir=moved["avatar"])


def test_old_and_damaged_folders_are_refused(moved, tmp_path, capsys):
    from flashtalker_jax.avatar.renderer import load_renderer

    old = tmp_path / "v2"
    shutil.copytree(moved["avatar"], old)
    meta = json.loads((old / "meta.json").read_text())
    meta["format_version"] = 2
    del meta["flame_sha256"]
    (old / "meta.json").write_text(json.dumps(meta))
    (old / "view.npz").unlink()
    (old / "track.npz").unlink()
    with pytest.raises(ModelFileError, match="format_version 2 is no longer supported") as err:
        load_renderer(old)
    assert "flashtalker adapt --resume" in str(err.value) and str(old / "meta.json") in str(err.value)
    out = tmp_path / "out.mp4"
    assert main(["speak", "--avatar", str(old), "--a2e", str(moved["a2e"]), "--audio", str(moved["wav"]),
                 "--out", str(out), "--quiet"]) == 2
    assert "re-run `flashtalker adapt`" in capsys.readouterr().err and not out.exists()

    no_flame = tmp_path / "no_flame"
    shutil.copytree(moved["avatar"], no_flame)
    (no_flame / "flame" / "generic_model.pkl").unlink()
    with pytest.raises(ModelFileError, match="generic_model.pkl: FLAME file of the avatar is missing"):
        load_renderer(no_flame)
    changed = tmp_path / "changed_flame"
    shutil.copytree(moved["avatar"], changed)
    with open(changed / "flame" / "FLAME_masks.pkl", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelFileError, match="FLAME_masks.pkl: differs from the FLAME file"):
        load_renderer(changed)
    no_track = tmp_path / "no_track"
    shutil.copytree(moved["avatar"], no_track)
    (no_track / "track.npz").unlink()
    with pytest.raises(ModelFileError, match="track.npz is missing"):
        load_renderer(no_track)


def test_motion_run_paths_are_resolved(tmp_path, monkeypatch):
    """save_motion_model stores the task's paths absolute and the run loads from a copy."""
    from types import SimpleNamespace

    import tiny

    from flashtalker_jax.motion.tasks import load_motion_model, save_motion_model

    built = tiny.make_a2e_run(tmp_path / "built", audio_dim=4, n_vertices=5)
    loaded = load_motion_model(built)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "flame").mkdir(parents=True)
    (tmp_path / "data" / "flame" / "generic_model.pkl").write_bytes(b"model")
    task = loaded.task
    task.dataset, task.feature_cache = "data", "cache"
    params = dict(np.load(built / "model.npz"))
    motion = SimpleNamespace(motion_norm=loaded.motion_norm, audio_norm=loaded.audio_norm,
                             templates=np.zeros((1, 15), np.float32), audio_dim=4)
    save_motion_model("run", task, params, motion, ["id0"])
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["task"]["dataset"] == str(tmp_path / "data")
    assert meta["task"]["feature_cache"] == str(tmp_path / "cache") and meta["task"]["flame_dir"] == ""
    assert meta["sources"]["flame_dir"] == str(tmp_path / "data" / "flame")
    assert set(meta["sources"]["flame_sha256"]) == {"generic_model.pkl"}
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    shutil.rmtree(tmp_path / "run")
    shutil.rmtree(tmp_path / "data")
    again = load_motion_model(tmp_path / "copy")
    assert again.identities == ["id0"] and again.templates.shape == (1, 15)
    with pytest.raises(ModelFileError, match="motion run folder not found"):
        load_motion_model(tmp_path / "run")
