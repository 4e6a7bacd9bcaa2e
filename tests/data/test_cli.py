"""`flashtalker data inspect / build-tfds` on a toy folder; bad input gives exit code 2."""
from __future__ import annotations

from flashtalker_jax.cli.main import main
from toy import make_toy_identity


def test_inspect_summarises_a_folder(tmp_path, capsys):
    folder = make_toy_identity(tmp_path / "id", seed=2)
    assert main(["data", "inspect", str(folder), "--load-frames"]) == 0
    table = capsys.readouterr().out
    assert "16x16" in table and "0.48 s" in table


def test_inspect_reports_a_missing_frame_without_traceback(tmp_path, capsys):
    folder = make_toy_identity(tmp_path / "id", seed=2)
    (folder / "images" / "00000_00.png").unlink()
    assert main(["data", "inspect", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "images/00000_00.png" in err and "Traceback" not in err


def test_build_tfds_command(tmp_path, capsys):
    make_toy_identity(tmp_path / "src" / "a", seed=0)
    assert main(["data", "build-tfds", str(tmp_path / "src"), "--out", str(tmp_path / "tfds")]) == 0
    assert "'train': 8" in capsys.readouterr().err
