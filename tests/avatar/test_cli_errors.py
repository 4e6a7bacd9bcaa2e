"""Bad inputs to the avatar commands end with a one-line error naming the path (exit 2);
avatar folders of another format_version are refused naming meta.json, with a fix."""
import pytest

from flashtalker_jax.avatar.adapt import load_avatar
from flashtalker_jax.avatar.export import FORMAT_VERSION
from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import ModelFileError


def test_eval_avatar_on_a_folder_that_is_not_an_avatar(tmp_path, capsys):
    assert main(["eval-avatar", "--avatar", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not an avatar folder" in err and "Traceback" not in err


def test_adapt_on_a_missing_dataset_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["adapt", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def _folder(tmp_path, meta):
    import json

    for name in ("config.json", "identity.npz", "state.npz"):
        (tmp_path / name).write_text("")
    (tmp_path / "flame").mkdir()
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


@pytest.mark.parametrize("meta, problem, fix", [
    ({"n_frames": 3}, "no format_version", "re-run `flashtalker adapt`"),
    ({"format_version": FORMAT_VERSION + 1}, "newer than this flashtalker reads", "upgrade"),
    ({"format_version": 1}, "no longer supported", "re-run `flashtalker adapt`"),
])
def test_avatar_format_version_is_checked(tmp_path, meta, problem, fix):
    folder = _folder(tmp_path, meta)
    with pytest.raises(ModelFileError) as err:
        load_avatar(folder)
    assert err.value.path == folder / "meta.json"
    assert problem in err.value.problem and fix in err.value.fix


def test_eval_avatar_names_the_meta_file_of_an_unversioned_avatar(tmp_path, capsys):
    (tmp_path / "avatar").mkdir()
    folder = _folder(tmp_path / "avatar", {"n_frames": 3})
    assert main(["eval-avatar", "--avatar", str(folder), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(folder / "meta.json") in err and "format_version" in err and "Traceback" not in err
