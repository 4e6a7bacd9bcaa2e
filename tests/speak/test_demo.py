"""`flashtalker demo --quick`: every stage end to end at CI size, the documented layout,
a flat report, and resumption (each step skips when its result exists)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flashtalker_jax import video
from flashtalker_jax.cli.main import main

REPORT_KEYS = {"psnr_heldout", "ssim_heldout", "mouth_open_corr", "render_fps", "total_seconds"}


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    for name in ("data/identity_000/transforms.json", "avatar/avatar/state.npz", "a2e/model.json",
                 "demo.mp4", "contact_sheet.png", "report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert all(not isinstance(v, (dict, list)) for v in report.values())
    assert report["voice"].split("+")[1] != report["identity_voice"]
    assert 0 < report["psnr_heldout"] < 100 and report["render_fps"] > 0
    frames = video.count_frames(out / "demo.mp4")
    samples, rate = video.decode_audio(out / "demo.mp4")
    assert frames == round(samples.shape[0] / rate * 25)
    assert np.isfinite(np.load(out / "demo_params.npz")["mouth_opening_mm"]).all()
    # Re-running reuses data, avatar and audio model: each step sees its result and skips.
    from flashtalker_jax.config import load_config
    from flashtalker_jax.pipeline import demo

    cfg = load_config("demo.py:quick")
    stamps = {p: (out / p).stat().st_mtime_ns for p in ("avatar/avatar/state.npz", "a2e/model.npz",
                                                         "data/identity_000/transforms.json")}
    ident = demo.make_identity(out, cfg)
    assert demo.make_avatar(out, ident, cfg) == out / "avatar" and demo.make_a2e(out, cfg) == out / "a2e"
    assert stamps == {p: (out / p).stat().st_mtime_ns for p in stamps}
    # Other settings for a stage: its old folder is moved aside and the stage runs again.
    cfg.data.seconds = 2.0
    ident = demo.make_identity(out, cfg)
    assert (ident / "transforms.json").stat().st_mtime_ns != stamps["data/identity_000/transforms.json"]
    assert [p.name.split("-")[0] for p in (out / "replaced").iterdir()] == ["data"]


def test_a_stage_is_reused_only_under_the_same_settings(tmp_path):
    import ml_collections

    from flashtalker_jax.pipeline.demo import STAGE_KEYS, claim_stage, stage_key

    a = ml_collections.ConfigDict({"steps": 3, "lr": 0.1})
    key = stage_key(a, 7)
    assert key == stage_key(ml_collections.ConfigDict({"lr": 0.1, "steps": 3}), 7)
    assert key != stage_key(a, 8) and key != stage_key(ml_collections.ConfigDict({"steps": 4, "lr": 0.1}), 7)
    stage = tmp_path / "avatar"
    stage.mkdir()
    (stage / "result").write_text("made by an older demo")   # a folder without a recorded key
    claim_stage(tmp_path, "avatar", key, (stage,))
    moved = list((tmp_path / "replaced").iterdir())
    assert not stage.exists() and len(moved) == 1 and (moved[0] / "result").read_text() == "made by an older demo"
    stage.mkdir()
    (stage / "result").write_text("new")
    claim_stage(tmp_path, "avatar", key, (stage,))              # same settings: kept
    assert (stage / "result").read_text() == "new"
    assert json.loads((tmp_path / STAGE_KEYS).read_text()) == {"avatar": key}
