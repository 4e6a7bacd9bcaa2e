"""`flashtalker adapt-a2e --resume`: a second run continues the first one's checkpoints and
early-stopping record instead of refusing the occupied run folder."""
import json

import pytest

from flashtalker_jax.cli.main import main

# Audio2Param: the cheapest motion model to pretrain; the resume plumbing is the same.
TINY = ["--config", "audio2param.py:tiny", "--config.task.model.d_model=16", "--config.task.model.window=12",
        "--config.task.batch_size=2", "--config.task.min_frames=6", "--config.train.steps=1",
        "--config.train.checkpoint_every=1"]
ADAPT = ["--config", "adapt_a2e.py:tiny", "--config.task.batch_size=2", "--config.task.min_frames=6",
         "--config.early_stop.criterion=loss", "--config.early_stop.eval_every=1",
         "--config.early_stop.eval_batches=1", "--config.early_stop.patience=100",
         "--config.train.checkpoint_every=1", "--config.train.async_checkpoint=False"]


@pytest.mark.slow
def test_adapt_a2e_resumes(tmp_path, capsys):
    ds, prior, run = tmp_path / "ds", tmp_path / "prior", tmp_path / "adapted"
    assert main(["synth-a2e-data", "--out", str(ds), "--identities", "1", "--seconds", "4",
                 "--config.split.val_sentences=1"]) == 0
    assert main(["pretrain-a2e", "--data", str(ds), "--out", str(prior), *TINY]) == 0
    adapt = ["adapt-a2e", "--a2e", str(prior), "--data", str(ds / "id000"), "--out", str(run), *ADAPT]
    assert main([*adapt, "--config.train.steps=1"]) == 0
    first = json.loads((run / "summary.json").read_text())
    assert [h["step"] for h in first["history"]] == [0, 1]
    # Without --resume the occupied run folder is refused; with it, training continues.
    assert main([*adapt, "--config.train.steps=2"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*adapt, "--config.train.steps=2", "--resume"]) == 0
    second = json.loads((run / "summary.json").read_text())
    assert [h["step"] for h in second["history"]] == [0, 1, 2]
    assert second["history"][:2] == first["history"]
