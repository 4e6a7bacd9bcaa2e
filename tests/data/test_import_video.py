"""import-video on the shared real clip (skipped when ../shared/data is absent)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.config import load_config
from flashtalker_jax.errors import InputFileError, ModelFileError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CLIP = SHARED / "video" / "german_news_20s.mp4"
LANDMARKER = SHARED / "models" / "face_landmarker.task"


@pytest.fixture
def video_cfg():
    cfg = load_config("data_synth").video
    cfg.landmarker = str(LANDMARKER)
    cfg.crop_size = 96          # small crops keep the test fast; detection runs on full frames
    return cfg


@pytest.mark.slow
@pytest.mark.skipif(not (CLIP.is_file() and LANDMARKER.is_file()),
                    reason=f"shared test media not found at {SHARED}")
def test_import_of_the_shared_news_clip(tmp_path, video_cfg):
    from flashtalker_jax.cli.main import main

    out = tmp_path / "news"
    overrides = [f"--config.video.crop_size={video_cfg.crop_size}"]
    assert main(["data", "import-video", str(CLIP), "--out", str(out), "--landmarker", str(LANDMARKER),
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


def test_missing_inputs_are_named(tmp_path, video_cfg):
    from flashtalker_jax.data.import_video import import_video

    with pytest.raises(InputFileError, match="video file not found"):
        import_video(tmp_path / "none.mp4", tmp_path / "out", video_cfg)
    if CLIP.is_file():
        video_cfg.landmarker = str(tmp_path / "missing.task")
        with pytest.raises(ModelFileError, match="MediaPipe face landmarker model not found"):
            import_video(CLIP, tmp_path / "out", video_cfg)
