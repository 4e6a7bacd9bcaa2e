"""Damaged VHAP folders: every reader (read_vhap_index, read_vhap, the motion dataset) refuses
them with one InputFileError naming the file, the key and what was expected, and
`flashtalker data inspect` prints that line without a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.data.vhap import MAX_SHAPE, read_vhap, read_vhap_index
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.motion.dataset import read_identity
from toy import make_toy_identity


@pytest.fixture
def toy(tmp_path):
    return make_toy_identity(tmp_path / "id", seed=2, num_frames=6, test_frames=2, size=8)


def _edit_transforms(root: Path, edit, name: str = "transforms.json") -> None:
    meta = json.loads((root / name).read_text())
    meta = edit(meta)
    (root / name).write_text(json.dumps(meta))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _resave(path: Path, **changes) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def _with_canonical(root: Path) -> Path:
    canonical = root / "canonical_flame_param.npz"
    canonical.write_bytes((root / "flame_param" / "00000.npz").read_bytes())
    return canonical


def _features(path, fps):
    n = len(read_vhap_index(path.parent).timesteps)
    return np.zeros((2 * n, 4), np.float32)


def _inspect_error(root: Path, capsys) -> str:
    """`flashtalker data inspect ROOT` fails with exit 2 and one error line, no traceback."""
    assert main(["data", "inspect", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("flashtalker data inspect: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- corrupt npz files

@pytest.mark.parametrize("which", ["frame", "canonical"])
def test_truncated_flame_parameters_are_named(toy, capsys, which):
    path = toy / "flame_param" / "00003.npz" if which == "frame" else _with_canonical(toy)
    _truncate(path)
    with pytest.raises(InputFileError, match="cannot read") as info:
        read_vhap(toy)
    assert str(path) in str(info.value) and "re-export" in str(info.value)
    assert str(path) in _inspect_error(toy, capsys)


@pytest.mark.parametrize("which", ["frame", "canonical"])
def test_motion_dataset_names_truncated_flame_parameters(toy, which):
    canonical = _with_canonical(toy)
    path = toy / "flame_param" / "00003.npz" if which == "frame" else canonical
    _truncate(path)
    with pytest.raises(InputFileError, match="cannot read") as info:
        read_identity(toy, 0, n_expr=10, feature_fn=_features)
    assert str(path) in str(info.value)


def test_motion_dataset_names_a_canonical_file_without_shape(toy):
    canonical = _with_canonical(toy)
    _resave(canonical, shape=None)
    with pytest.raises(InputFileError, match="missing key 'shape'") as info:
        read_identity(toy, 0, n_expr=10, feature_fn=_features)
    assert str(canonical) in str(info.value)


# ----------------------------------------------------------------------------- FLAME shape arrays

BAD_SHAPES = [
    (np.zeros((2, 20), np.float32), r"\(2, 20\)"),              # two rows
    (np.zeros((1, 1, 20), np.float32), r"\(1, 1, 20\)"),        # an extra axis
    (np.zeros(MAX_SHAPE + 1, np.float32), rf"\({MAX_SHAPE + 1},\)"),  # wider than FLAME
    (np.zeros(0, np.float32), r"\(0,\)"),                        # empty
]


@pytest.mark.parametrize("which", ["frame", "canonical"])
@pytest.mark.parametrize("shape,found", BAD_SHAPES)
def test_shape_with_the_wrong_rows_or_width_is_refused(toy, capsys, which, shape, found):
    path = toy / "flame_param" / "00000.npz" if which == "frame" else _with_canonical(toy)
    _resave(path, shape=shape)
    with pytest.raises(InputFileError, match=rf"key 'shape' has shape {found}, expected \(n_shape,\)") as info:
        read_vhap(toy)
    assert str(path) in str(info.value) and str(MAX_SHAPE) in str(info.value)
    assert "key 'shape'" in _inspect_error(toy, capsys)


@pytest.mark.parametrize("shape,found", BAD_SHAPES[:3])
def test_motion_dataset_refuses_a_bad_shape(toy, shape, found):
    canonical = _with_canonical(toy)  # the motion dataset reads the shape from here only
    _resave(canonical, shape=shape)
    with pytest.raises(InputFileError, match=rf"key 'shape' has shape {found}, expected") as info:
        read_identity(toy, 0, n_expr=10, feature_fn=_features)
    assert str(canonical) in str(info.value)


def test_expr_with_two_rows_is_refused(toy):
    path = toy / "flame_param" / "00000.npz"
    _resave(path, expr=np.zeros((2, 10), np.float32))
    with pytest.raises(InputFileError, match=r"key 'expr' has shape \(2, 10\)"):
        read_vhap(toy)
    _with_canonical(toy)
    with pytest.raises(InputFileError, match=r"key 'expr' has shape \(2, 10\)"):
        read_identity(toy, 0, n_expr=10, feature_fn=_features)


def test_static_offset_without_xyz_columns_is_refused(toy):
    _resave(toy / "flame_param" / "00000.npz", static_offset=np.zeros((5, 2), np.float32))
    with pytest.raises(InputFileError, match=r"key 'static_offset' has shape \(5, 2\), expected \(V, 3\)"):
        read_vhap(toy)


# ----------------------------------------------------------------------------- transforms.json

def _drop_timestep(meta):
    del meta["frames"][2]["timestep_index"]
    return meta


def _timestep_text(meta):
    meta["frames"][2]["timestep_index"] = "two"
    return meta


def _frames_not_a_list(meta):
    meta["frames"] = {"0": meta["frames"][0]}
    return meta


def _frame_not_an_object(meta):
    meta["frames"][1] = "images/00001_00.png"
    return meta


def _no_flame_path(meta):
    del meta["frames"][4]["flame_param_path"]
    return meta


def _fps_text(meta):
    meta["fps"] = "fast"
    return meta


def _no_camera_matrix(meta):
    del meta["frames"][3]["transform_matrix"]
    return meta


@pytest.mark.parametrize("edit,message", [
    (_drop_timestep, r"transforms\.json: frames\[2\] has no 'timestep_index'"),
    (_no_camera_matrix, r"transforms\.json: frames\[3\] \(images/00003_00\.png\) has an incomplete camera "
                        r"\(KeyError: 'transform_matrix'\)"),
    (_timestep_text, r"transforms\.json: frames\[2\] 'timestep_index' is 'two', expected an integer"),
    (lambda meta: meta["frames"], r"transforms\.json: top level is a list, expected an object"),
    (_frames_not_a_list, r"transforms\.json: 'frames' is a dict, expected a list"),
    (_frame_not_an_object, r"transforms\.json: frames\[1\] is a str, expected an object"),
    (_no_flame_path, r"transforms\.json: frames\[4\] has no 'flame_param_path'"),
    (_fps_text, r"transforms\.json: 'fps' is 'fast', expected a positive number"),
])
def test_malformed_transforms_are_named(toy, capsys, edit, message):
    _edit_transforms(toy, edit)
    with pytest.raises(InputFileError, match=message):
        read_vhap_index(toy)
    with pytest.raises(InputFileError, match=message):
        read_identity(toy, 0, n_expr=10, feature_fn=_features)
    assert "transforms.json" in _inspect_error(toy, capsys)


@pytest.mark.parametrize("edit,message", [
    (_drop_timestep, r"transforms_train\.json: frames\[2\] has no 'timestep_index'"),
    (lambda meta: meta["frames"], r"transforms_train\.json: top level is a list, expected an object"),
])
def test_malformed_split_files_are_named(toy, edit, message):
    _edit_transforms(toy, edit, "transforms_train.json")
    with pytest.raises(InputFileError, match=message):
        read_vhap_index(toy)


def test_malformed_phonemes_are_named(toy):
    (toy / "phonemes.json").write_text(json.dumps([{"phoneme": "a", "start": 0.0}]))
    with pytest.raises(InputFileError, match=r"phonemes\.json: entry 0 has no 'end'"):
        read_vhap(toy)


# ----------------------------------------------------------------------------- paths outside the folder

@pytest.mark.parametrize("key", ["file_path", "flame_param_path", "fg_mask_path"])
@pytest.mark.parametrize("outside", ["../x.png", "images/../../x.png", "../../../../../tmp/x.png",
                                     "/tmp/x.png"])
def test_paths_outside_the_dataset_folder_are_refused(toy, capsys, key, outside):
    # ../x.png exists (beside the folder), so only the check stops that read.
    (toy.parent / "x.png").write_bytes((toy / "images" / "00000_00.png").read_bytes())

    def edit(meta):
        meta["frames"][0][key] = outside
        return meta

    _edit_transforms(toy, edit)
    message = rf"transforms\.json: frames\[0\] {key} '{outside}' points outside the dataset folder"
    with pytest.raises(InputFileError, match=message):
        read_vhap(toy)
    assert "points outside the dataset folder" in _inspect_error(toy, capsys)


def test_audio_path_outside_the_dataset_folder_is_refused(toy):
    def edit(meta):
        meta["audio_path"] = "../audio.wav"
        return meta

    (toy.parent / "audio.wav").write_bytes((toy / "audio.wav").read_bytes())
    _edit_transforms(toy, edit)
    with pytest.raises(InputFileError, match=r"transforms\.json: audio_path '\.\./audio\.wav' points outside"):
        read_vhap_index(toy)


def test_paths_inside_the_folder_still_read(toy):
    def edit(meta):
        meta["frames"][0]["file_path"] = "images/../images/00000_00.png"
        meta["frames"][1]["file_path"] = "./images/00001_00.png"
        return meta

    _edit_transforms(toy, edit)
    seq = read_vhap(toy)
    assert seq.load_image(0).shape == (8, 8, 3) and seq.load_image(1).shape == (8, 8, 3)


def test_motion_run_statistics_are_named_when_damaged(tmp_path):
    from flashtalker_jax.motion.dataset import Normaliser

    path = tmp_path / "motion.npz"
    Normaliser(mean=np.zeros(4, np.float32), std=np.ones(4, np.float32)).save(path)
    assert Normaliser.load(path).mean.shape == (4,)
    _truncate(path)
    with pytest.raises(InputFileError, match="motion.npz: cannot read normalisation statistics"):
        Normaliser.load(path)
    np.savez(path, mean=np.zeros(4))
    with pytest.raises(InputFileError, match="motion.npz: missing key 'std'"):
        Normaliser.load(path)


def test_errors_are_one_line():
    error = InputFileError("a/b.npz", "cannot read (BadZipFile: line one\nline two)", "re-export\nit")
    assert str(error) == "a/b.npz: cannot read (BadZipFile: line one line two) (re-export it)"
