"""An avatar folder with a truncated, overwritten or incomplete file is refused by
read_avatar_folder (speak, eval, eval-avatar, bench) with the file named, the problem and
the fix: a one-line CLI error, never a zipfile/numpy traceback."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.avatar.export import REEXPORT, read_avatar_folder
from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ModelFileError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speak"))


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    import tiny

    root = tmp_path_factory.mktemp("damaged_avatar")
    return tiny.make_avatar(tiny.make_identity(root), root / "avatar", audio_dim=0)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def without(key: str):
    def write(path: Path) -> None:
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files if k != key}
        np.savez(path, **arrays)
    return write


CASES = [
    ("identity.npz", truncate, "cannot read avatar identity (BadZipFile"),
    ("identity.npz", without("shape"), "avatar identity lacks 'shape'"),
    ("state.npz", truncate, "cannot read avatar model state (BadZipFile"),
    ("view.npz", truncate, "cannot read replay camera (BadZipFile"),
    ("view.npz", without("K"), "replay camera lacks 'K'"),
    ("track.npz", truncate, "cannot read replay pose track (BadZipFile"),
    ("track.npz", without("timesteps"), "replay pose track lacks 'timesteps'"),
    ("config.json", truncate, "cannot read avatar task config (JSONDecodeError"),
    ("config.json", lambda path: path.write_text("[]"), "avatar task config holds a list"),
]


@pytest.mark.parametrize("name, damage, problem", CASES, ids=[f"{n}-{p.split(' (')[0]}" for n, _, p in CASES])
def test_damaged_file_is_named_with_the_problem_and_the_fix(avatar, tmp_path, name, damage, problem):
    folder = Path(shutil.copytree(avatar, tmp_path / "avatar"))
    damage(folder / name)
    with pytest.raises(ModelFileError) as info:
        read_avatar_folder(folder)
    assert info.value.path == folder / name
    assert info.value.problem.startswith(problem) and info.value.fix == REEXPORT


def test_eval_avatar_on_a_truncated_state_is_one_line_naming_the_file(avatar, tmp_path, capsys):
    folder = Path(shutil.copytree(avatar, tmp_path / "avatar"))
    truncate(folder / "state.npz")
    assert main(["eval-avatar", "--avatar", str(folder), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'state.npz'}: cannot read avatar model state" in err
    assert "flashtalker adapt --resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_intact_folder_reads(avatar):
    folder = read_avatar_folder(avatar)
    assert folder.shape.shape == (300,) and folder.static_offset is None and folder.state
    assert json.loads((avatar / "meta.json").read_text())["format_version"] == folder.meta["format_version"]
