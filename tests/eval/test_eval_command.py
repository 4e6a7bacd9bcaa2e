"""`flashtalker eval` end to end on a tiny avatar, both settings: report keys, PNGs, finite
values, unavailable metrics reported with a reason (never 0), clear errors for bad inputs."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ConfigError, InputFileError, ModelFileError
from flashtalker_jax.eval.run import BY_CONSTRUCTION, NO_GT_FRAMES, evaluate
from flashtalker_jax.metrics.registry import METRICS

MESH = ("lve_max_l2_mm", "lve_max_sq_mm2", "mve_mm", "mesh_opening_error_mm")


def _check_entries(entries):
    assert set(entries) == {spec.name for spec in METRICS}
    for name, entry in entries.items():
        if entry["available"]:
            assert math.isfinite(entry["value"]), name
        else:
            assert entry["value"] is None and entry["reason"].startswith("unavailable"), name


@pytest.mark.slow
def test_self_reenactment(eval_runs, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    code = main(["eval", "--avatar", str(eval_runs["avatar"]), "--data", str(eval_runs["identity"]),
                 "--a2e", str(eval_runs["a2e"]), "--setting", "self", "--max-frames", "12",
                 "--report", str(report_path), "--out", str(tmp_path / "figs")])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert {"environment", "rows", "table", "per_frame", "pngs", "frames"} <= set(report)
    assert report["frames"] == 12 and set(report["rows"]) == {"tracked", "a2e"}
    for png in report["pngs"].values():
        assert Path(png).parent == tmp_path / "figs" and Path(png).stat().st_size > 1000
    for row in report["rows"].values():
        _check_entries(row)
        for name in ("psnr", "ssim", "l1", "mouth_psnr"):
            assert row[name]["available"], name
        assert "no LPIPS" in row["lpips_alex"]["reason"]
        assert "MS-SSIM needs a short side" in row["ms_ssim"]["reason"]  # 32 px frames
    tracked, a2e = report["rows"]["tracked"], report["rows"]["a2e"]
    assert tracked["lve_max_l2_mm"]["reason"] == BY_CONSTRUCTION
    for name in MESH + ("lmd_flame", "lmd_flame_mouth", "stability_flame", "speech_opening_gap_mm"):
        assert a2e[name]["available"], name
    assert len(report["per_frame"]["a2e"]["psnr"]) == 12
    table = capsys.readouterr().out
    assert "psnr↑" in table and "lpips_alex↓" in table and "n/a" in table and "no LPIPS" in table


@pytest.mark.slow
def test_cross_reenactment(eval_runs, eval_renderer, tmp_path):
    out = tmp_path / "figs"
    report = evaluate(eval_runs["avatar"], eval_runs["identity"], "cross", a2e=eval_runs["a2e"],
                      sources=[eval_runs["identity"], eval_runs["wav"]], max_frames=16,
                      out_dir=out, show_progress=False, renderer=eval_renderer)
    assert (out / "grid.png").stat().st_size > 1000 and (out / "curves.png").stat().st_size > 1000
    rows = report["rows"]
    assert set(rows) == {"a2e:id0", "a2e:speech.wav"} and report["frames"] == 16
    for entries in rows.values():
        _check_entries(entries)
        for name in ("psnr", "ssim", "lmd_flame", "lmd_mouth", "aue_all"):
            assert entries[name]["reason"] == NO_GT_FRAMES, name
        assert entries["stability_flame"]["available"]
        assert entries["speech_opening_gap_mm"]["available"]
        assert "SyncNet" in entries["lse_c"]["reason"]
    for name in MESH:  # the VHAP source has tracked motion, the speech file has none
        assert rows["a2e:id0"][name]["available"], name
        assert "no tracked motion" in rows["a2e:speech.wav"][name]["reason"], name


def test_bad_inputs(eval_runs, tmp_path, capsys):
    avatar, ident = eval_runs["avatar"], eval_runs["identity"]
    with pytest.raises(ModelFileError, match="avatar folder not found"):
        evaluate(tmp_path / "missing", ident, "self")
    with pytest.raises(InputFileError):
        evaluate(avatar, tmp_path, "self")  # not a VHAP folder
    no_heldout = tmp_path / "no_heldout"
    shutil.copytree(ident, no_heldout, ignore=shutil.ignore_patterns("transforms_test.json",
                                                                     "transforms_val.json"))
    with pytest.raises(InputFileError, match="split"):
        evaluate(avatar, no_heldout, "self")
    with pytest.raises(ModelFileError, match="alex.pth"):  # given LPIPS weights must exist
        evaluate(avatar, ident, "self", lpips_weights=(tmp_path / "alex.pth", tmp_path / "lin.pth"))
    with pytest.raises(ConfigError, match="needs --a2e"):
        evaluate(avatar, ident, "cross", sources=[eval_runs["wav"]])
    with pytest.raises(InputFileError, match="not found"):
        evaluate(avatar, ident, "cross", a2e=eval_runs["a2e"], sources=[tmp_path / "none.wav"])
    code = main(["eval", "--avatar", str(tmp_path / "missing"), "--data", str(ident), "--setting",
                 "self", "--report", str(tmp_path / "r.json")])
    assert code == 2 and "avatar folder not found" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
