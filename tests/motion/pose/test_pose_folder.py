"""AVATAR/pose end to end on a tiny tracked folder: adapt-pose, generation of any length,
round trip, and damaged files refused with a ModelFileError naming them."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pose_helpers import FPS, make_vhap, max_step, write_speech

from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.motion.pose.folder import load_pose_generator

OVERRIDES = ["--config.task.window=10", "--config.task.overlap=4", "--config.task.exclude_margin=10",
             "--config.train.steps=10"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    data = make_vhap(root / "ident", n_frames=150, test_frames=30)
    avatar = root / "avatar"
    avatar.mkdir()
    rc = main(["adapt-pose", "--data", str(data), "--avatar", str(avatar), "--out", str(root / "run"),
               "--config", "pose_talk2me.py:quick", "--report", str(root / "adapt.json"), *OVERRIDES])
    assert rc == 0
    return root, data, avatar


def test_generate_any_length(built):
    root, _, avatar = built
    gen = load_pose_generator(avatar)
    speech = write_speech(root / "long.wav", 12.0, seed=3)      # 2.5x the tracked clip
    n = int(12.0 * FPS)
    poses = gen.generate(speech, n, FPS)
    assert set(poses) == {"rotation", "translation"} and poses["rotation"].shape == (n, 3)
    track = np.concatenate([poses["rotation"], poses["translation"]], 1)
    recorded = gen.db.poses + gen.db.pose_mean
    assert max_step(track, gen.db.pose_std) <= 1.5 * max_step(recorded, gen.db.pose_std)
    again = load_pose_generator(avatar / "pose").generate(speech, n, FPS)
    np.testing.assert_array_equal(poses["rotation"], again["rotation"])     # deterministic, round trip
    at30 = gen.generate(speech, int(12.0 * 30), 30.0)                      # another frame rate
    assert at30["rotation"].shape == (360, 3)


def test_eval_pose_report(built, tmp_path):
    root, data, avatar = built
    report = tmp_path / "r.json"
    assert main(["eval-pose", "--avatar", str(avatar), "--data", str(data), "--report", str(report)]) == 0
    scores = json.loads(report.read_text())["heldout"]["scores"]
    assert set(scores) >= {"generated", "retrieval", "replay", "static"}
    assert scores["static"]["velocity_ratio"] == 0.0
    assert scores["generated"]["velocity_ratio"] > 0.0


@pytest.mark.parametrize("name", ["database.npz", "refiner.npz"])
def test_damaged_file_named(built, tmp_path, name):
    import shutil

    _, _, avatar = built
    copy = tmp_path / "avatar"
    shutil.copytree(avatar, copy)
    path = copy / "pose" / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match=name):
        load_pose_generator(copy)
    path.unlink()
    with pytest.raises(ModelFileError, match=name):
        load_pose_generator(copy)


def test_bad_config_and_missing_folder(built, tmp_path):
    import shutil

    _, _, avatar = built
    with pytest.raises(ModelFileError, match="pose"):
        load_pose_generator(tmp_path / "nowhere")
    copy = tmp_path / "avatar"
    shutil.copytree(avatar, copy)
    config = copy / "pose" / "config.json"
    meta = json.loads(config.read_text())
    meta["format_version"] = 99
    config.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="config.json"):
        load_pose_generator(copy)


def test_database_arrays_checked(built, tmp_path):
    """A well-formed .npz whose arrays disagree is refused naming the file (not a traceback)."""
    from flashtalker_jax.motion.pose.database import load_database

    _, _, avatar = built
    arrays = dict(np.load(avatar / "pose" / "database.npz"))
    arrays["pose_mean"] = np.zeros(4, np.float32)
    bad = tmp_path / "database.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="database.npz"):
        load_database(bad)
