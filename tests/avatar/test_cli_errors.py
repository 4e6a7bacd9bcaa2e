"""Bad inputs to the avatar commands end with a one-line error naming the path (exit 2)."""
from flashtalker_jax.cli.main import main


def test_eval_avatar_on_a_folder_that_is_not_an_avatar(tmp_path, capsys):
    assert main(["eval-avatar", "--avatar", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not an avatar folder" in err and "Traceback" not in err


def test_adapt_on_a_missing_dataset_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["adapt", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
