"""`flashtalker demo --video CLIP --quick` on a real clip (may_5s, 512x512 source, crop box
partly outside the frame): track -> adapt over the frame -> body inpainter + body loop ->
speak in the person's full frame -> held-out evaluation with the three regions. Quality
is not the point at this size (a few steps of each training); the chain is: the mp4 has
the source's size and the speech, its pixels away from the head are the person's own
recorded frame (not a flat colour), the report scores whole frame, head box and neck
ring and says where the pixels came from, and a second run reuses every stage."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flashtalker_jax import video
from flashtalker_jax.cli.main import main


@pytest.mark.slow
def test_demo_video_quick(shared_data, tmp_path, capsys):
    out = tmp_path / "demo"
    clip = shared_data / "video" / "may_5s.mp4"
    args = ["demo", "--video", str(clip), "--quick", "--out", str(out),
            "--landmarker", str(shared_data / "models" / "face_landmarker.task"),
            f"--config.track.video.segmenter={shared_data / 'models' / 'selfie_segmenter.tflite'}"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["output_size"] == [512, 512]               # may_5s's own frame size
    assert set(report["regions"]) == {"whole_frame", "head_box", "neck_ring"}
    for scores in report["regions"].values():
        assert np.isfinite(scores["psnr"]) and scores["pixels"] > 0
    assert report["compositing"]["method"] == "body inpainter"
    assert "torso/background from the ground-truth frame" in report["compositing"]["pixels"]
    assert (out / "still.png").is_file() and (out / "avatar" / "avatar" / "body" / "body.json").is_file()

    frames = np.stack(list(video.iter_frames(out / "demo.mp4")))
    assert frames.shape[1:] == (512, 512, 3) and len(frames) == report["frames"]
    samples, rate = video.decode_audio(out / "demo.mp4")
    assert len(samples) > 0.5 * rate                         # the sentence is muxed
    # The top corners lie outside any head: they are the recorded background (H.264 twice:
    # a few levels), not a flat fill.
    source = np.stack(list(video.iter_frames(clip)))
    corner = (slice(0, 48), slice(0, 48))
    assert frames[:, corner[0], corner[1]].std() > 5.0
    assert np.abs(frames[0][corner].astype(float) - source[:, corner[0], corner[1]].astype(float)).mean(
        axis=(1, 2, 3)).min() < 6.0

    capsys.readouterr()
    before = (out / "avatar" / "avatar" / "state.npz").stat().st_mtime
    assert main(args) == 0                                   # every stage reused
    assert (out / "avatar" / "avatar" / "state.npz").stat().st_mtime == before
