"""import-video on the shared real clip (`shared_data` fixture: skipped only when
../shared/data is absent)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.config import load_config
from flashtalker_jax.errors import InputFileError, ModelFileError

CLIP = Path("video") / "german_news_20s.mp4"
LANDMARKER = Path("models") / "face_landmarker.task"


@pytest.fixture
def video_cfg(tmp_path):
    cfg = load_config("data_synth").video
    cfg.landmarker = str(tmp_path / "not_used.task")
    cfg.crop_size = 96          # small crops keep the test fast; detection runs on full frames
    return cfg


@pytest.mark.slow
def test_import_of_the_shared_news_clip(tmp_path, video_cfg, shared_data):
    from flashtalker_jax.cli.main import main

    clip, landmarker = shared_data / CLIP, shared_data / LANDMARKER
    assert clip.is_file() and landmarker.is_file(), f"{shared_data}: news clip or landmarker missing"
    out = tmp_path / "news"
    overrides = [f"--config.video.crop_size={video_cfg.crop_size}"]
    assert main(["data", "import-video", str(clip), "--out", str(out), "--landmarker", str(landmarker),
                 *overrides]) == 0
    report = json.loads((out / "import_report.json").read_text())
    assert report["frames"] == 500 and report["fps"] == 25.0
    assert report["audio_seconds"] == pytest.approx(20.0, abs=0.02) and report["audio_sample_rate"] == 16000
    assert report["faces_found"] == 500 and report["frames_without_face"] == []
    assert "flame_param/" in report["missing_for_training"]
    assert len(list((out / "images").glob("*_00.png"))) == 500
    with np.load(out / "landmarks" / "00250.npz") as lm:
        points = lm["landmarks"]
        assert points.shape == (478, 3) and bool(lm["found"])
        assert (points[:, :2] > 0).all() and (points[:, :2] < video_cfg.crop_size).all()


def test_a_missing_video_is_named(tmp_path, video_cfg):
    from flashtalker_jax.data.import_video import import_video

    with pytest.raises(InputFileError, match="video file not found"):
        import_video(tmp_path / "none.mp4", tmp_path / "out", video_cfg)


def test_a_missing_landmarker_is_named(tmp_path, video_cfg, shared_data):
    from flashtalker_jax.data.import_video import import_video

    video_cfg.landmarker = str(tmp_path / "missing.task")
    with pytest.raises(ModelFileError, match="MediaPipe face landmarker model not found"):
        import_video(shared_data / CLIP, tmp_path / "out", video_cfg)
