"""The motion prior bundled with the package (pipeline/bundled.py): it is the model its
recorded config and checksums say, launch/train_motion_prior.py reproduces its files bit
for bit, a pip install carries it, and speak uses it without --a2e only on the procedural
head it was made for."""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.pipeline import bundled

REPO = Path(__file__).resolve().parents[2]


def _launch_module():
    spec = importlib.util.spec_from_file_location("train_motion_prior", REPO / "launch" / "train_motion_prior.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_prior_matches_its_recorded_config_and_checksums():
    from flashtalker_jax.config import load_config
    from flashtalker_jax.flame.procedural import procedural_model
    from flashtalker_jax.motion.tasks import load_motion_model

    run = bundled.bundled_run()
    bundle = bundled.read_bundle(run)
    assert bundle["sha256"] == bundled.model_sha256(run)
    config = load_config(bundle["config_name"], bundle["overrides"])
    assert bundle["config"] == _launch_module().plain_config(config), "configs/motion_prior.py changed: retrain"
    assert bundle["flame_content_sha256"] == bundled.flame_content_sha256(procedural_model(bundle["flame_seed"]))
    loaded = load_motion_model(run)
    assert loaded.kind == bundle["kind"] == "audio2param"
    assert loaded.task.model.d_model == config.pretrain.task.model.d_model
    assert config.pretrain.train.steps == json.loads((run / bundled.REPORT_FILE).read_text())["summary"]["steps"]
    meta = (run / "model.json").read_text()
    assert "/tmp" not in meta and "/work" not in meta and "/home" not in meta   # no machine paths shipped
    size = sum((run / name).stat().st_size for name in bundled.MODEL_FILES)
    assert size < 10 * 2 ** 20, size   # ~2M float32 parameters


def test_every_bundled_file_is_package_data():
    text = (REPO / "setup.py").read_text()
    globs = [g for g in text.split('"') if g.startswith("bundled/")]
    files = [p.relative_to(REPO / "flashtalker_jax").as_posix()
             for p in (REPO / "flashtalker_jax" / "bundled").rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)


def test_flame_content_hash_is_the_same_for_files_and_memory(tmp_path):
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.flame.procedural import procedural_model, write_procedural_flame

    files = bundled.flame_content_sha256(load_flame_model(write_procedural_flame(tmp_path)))
    assert files == bundled.flame_content_sha256(procedural_model(0))
    assert files != bundled.flame_content_sha256(procedural_model(1))


@pytest.mark.slow
def test_training_script_reproduces_its_files_bit_for_bit(tmp_path):
    """The tiny preset (seconds) trained twice from scratch: identical checksums."""
    sums = []
    for name in ("a", "b"):
        subprocess.run([sys.executable, str(REPO / "launch" / "train_motion_prior.py"), "--out", str(tmp_path / name),
                        "--config", "motion_prior.py:tiny"], check=True, capture_output=True, cwd=tmp_path)
        bundle = json.loads((tmp_path / name / bundled.BUNDLE_FILE).read_text())
        assert bundle["sha256"] == bundled.model_sha256(tmp_path / name)
        sums.append(bundle)
    assert sums[0] == sums[1]
    with np.load(tmp_path / "a" / "model.npz") as a, np.load(tmp_path / "b" / "model.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def _speech(path: Path, seconds: float = 1.0) -> Path:
    import soundfile

    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32),
                    16000)
    return path


@pytest.mark.slow
def test_speak_without_a2e_uses_the_bundled_prior_on_the_procedural_head(tiny_runs, tmp_path, capsys):
    from flashtalker_jax.cli.main import main

    report = tmp_path / "r.json"
    assert main(["speak", "--avatar", str(tiny_runs["avatar"]), "--audio", str(_speech(tmp_path / "a.wav")),
                 "--out", str(tmp_path / "o.mp4"), "--report", str(report), "--quiet"]) == 0
    assert "no --a2e: using the bundled motion prior" in capsys.readouterr().err
    saved = json.loads(report.read_text())
    assert saved["bundled_motion_prior"] is True and saved["a2e"] == str(bundled.bundled_run())


def test_speak_without_a2e_refuses_another_head(tiny_runs, tmp_path, capsys):
    from flashtalker_jax.avatar.export import resolve_avatar_dir
    from flashtalker_jax.cli.main import main
    from flashtalker_jax.flame.procedural import write_procedural_flame

    avatar = tmp_path / "avatar"
    shutil.copytree(resolve_avatar_dir(tiny_runs["avatar"]), avatar)
    other = write_procedural_flame(tmp_path / "other", seed=1)
    for f in other.iterdir():
        shutil.copyfile(f, avatar / "flame" / f.name)
    out = tmp_path / "o.mp4"
    assert main(["speak", "--avatar", str(avatar), "--audio", str(_speech(tmp_path / "a.wav")),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "drives only avatars on the procedural head" in err and "pass --a2e RUN" in err
    assert not out.exists()
