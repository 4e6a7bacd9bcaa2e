"""A motion run folder whose model.npz or templates.npy is truncated, overwritten or from
another run is refused with the file named, the problem and what to do (no traceback
through the CLI), by every reader: load_motion_model (speak, eval-a2e, adapt-a2e's prior)
and adapt-a2e's own copy of the prior's parameters."""
from __future__ import annotations

import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.motion.tasks import RUN_DAMAGED, load_motion_model, read_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speak"))
N_VERTICES = 4   # Audio2Param's template width is 3 x this


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import tiny

    return tiny.make_a2e_run(tmp_path_factory.mktemp("a2e") / "run", audio_dim=4, n_vertices=N_VERTICES)


@pytest.fixture
def copy(run, tmp_path):
    return Path(shutil.copytree(run, tmp_path / "run"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite_middle(path: Path) -> None:
    """Flip bytes in the middle of the largest array's data: the zip directory and headers
    stay intact, that member's CRC does not (np.savez stores members uncompressed)."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26:member.header_offset + 30])
    middle = member.header_offset + 30 + name_length + extra_length + member.file_size // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))


def test_the_intact_run_loads(run):
    loaded = load_motion_model(run)
    assert loaded.templates.shape == (1, 3 * N_VERTICES)


@pytest.mark.parametrize("damage, problem", [(truncate, "BadZipFile"), (overwrite_middle, "Bad CRC-32")])
def test_damaged_model_npz_is_named(copy, damage, problem):
    damage(copy / "model.npz")
    for reader in (load_motion_model, read_params):
        with pytest.raises(ModelFileError) as info:
            reader(copy)
        assert info.value.path == copy / "model.npz"
        assert "cannot read the run's parameters" in info.value.problem and problem in info.value.problem
        assert info.value.fix == RUN_DAMAGED


def test_model_npz_with_other_keys_is_named(copy):
    np.savez(copy / "model.npz", something_else=np.zeros(3))
    with pytest.raises(ModelFileError, match=r"model\.npz: lacks parameters"):
        load_motion_model(copy)


@pytest.mark.parametrize("write, problem", [
    (truncate, "cannot read Audio2Param identity templates"),
    (lambda path: np.save(path, np.zeros((1, 3 * N_VERTICES + 1), np.float32)),
     f"has shape (1, {3 * N_VERTICES + 1}), model.json says (styles, {3 * N_VERTICES})"),
    (lambda path: path.unlink(), "Audio2Param identity templates file not found"),
])
def test_damaged_or_missing_templates_are_named(copy, write, problem):
    write(copy / "templates.npy")
    with pytest.raises(ModelFileError) as info:
        load_motion_model(copy)
    assert info.value.path == copy / "templates.npy" and problem in info.value.problem


def test_adapt_a2e_on_a_truncated_prior_is_one_line_naming_the_file(copy, tmp_path, capsys):
    truncate(copy / "model.npz")
    assert main(["adapt-a2e", "--a2e", str(copy), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{copy / 'model.npz'}: cannot read the run's parameters" in err
    assert "re-run the job" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
