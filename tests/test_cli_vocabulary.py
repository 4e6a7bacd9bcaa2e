"""One command-line vocabulary: `--a2e` for a motion run, `--batch`, `--sample-steps`,
`--resume` wherever training runs, and `--config.*` overrides honoured or refused by name."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from flashtalker_jax.cli.main import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix=()):
    """(command words, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _commands(sub, (*prefix, name))


COMMANDS = {" ".join(words): p for words, p in _commands(build_parser())}


def _options(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_flag_names_are_shared():
    for name, parser in COMMANDS.items():
        options = _options(parser)
        assert "--batch-size" not in options, name
        assert "--steps" not in options, f"{name}: DDIM steps are --sample-steps, training steps --config.train.steps"
    for name in ("speak", "eval", "eval-a2e", "adapt-a2e", "bench speak"):
        assert "--a2e" in _options(COMMANDS[name]), name
    for name in ("speak", "eval", "eval-a2e"):
        assert {"--sample-steps", "--seed"} <= _options(COMMANDS[name]), name
    for name in ("speak", "eval"):
        assert "--batch" in _options(COMMANDS[name]), name


@pytest.mark.parametrize("name", ["train", "adapt", "pretrain-a2e", "adapt-a2e"])
def test_every_training_command_resumes(name):
    assert {"--resume", "--restart"} <= set(_options(COMMANDS[name]))


def test_adapt_a2e_resume_reaches_the_trainer(monkeypatch, tmp_path):
    import inspect

    from flashtalker_jax.motion import jobs

    # jobs.adapt hands `resume` to the trainer as pretrain does (a real run needs a prior:
    # tests/motion/test_jobs.py).
    assert "resume=resume" in inspect.getsource(jobs.adapt)
    calls = {}

    def fake_adapt(config, prior, data, out, resume=False, restart=False):
        calls.update(prior=prior, resume=resume, steps=config.train.steps)
        return {"status": "completed", "criterion": "loss", "best_score": 0.0, "best_step": 0, "train_seconds": 0.0}

    monkeypatch.setattr(jobs, "adapt", fake_adapt)
    assert main(["adapt-a2e", "--a2e", str(tmp_path / "prior"), "--data", str(tmp_path), "--out",
                 str(tmp_path / "run"), "--config", "adapt_a2e.py:tiny", "--resume"]) == 0
    assert calls == {"prior": str(tmp_path / "prior"), "resume": True, "steps": 40}


@pytest.mark.parametrize("argv", [
    ["head", "synth", "--out", "OUT"],
    ["data", "inspect", "OUT"],
    ["data", "build-tfds", "OUT", "--out", "OUT"],
    ["eval-a2e", "--a2e", "OUT", "--data", "OUT", "--report", "OUT/r.json"],
    ["speak", "--avatar", "OUT", "--audio", "a.wav", "--a2e", "OUT", "--out", "OUT/v.mp4"],
    ["bench", "raster"],
])
def test_commands_without_a_config_refuse_overrides(argv, tmp_path, capsys):
    argv = [str(tmp_path) if a == "OUT" else a.replace("OUT", str(tmp_path)) for a in argv]
    assert main([*argv, "--config.train.steps=3"]) == 2
    err = capsys.readouterr().err
    command = " ".join(argv[:2] if argv[0] in ("head", "data", "bench") else argv[:1])
    assert f"flashtalker {command}: error: takes no --config.* overrides" in err
    assert "--config.train.steps=3" in err
    assert not any(tmp_path.iterdir())   # refused before doing anything


def test_unknown_override_names_the_config_file(tmp_path, capsys):
    assert main(["pretrain-a2e", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--config", "pretrain_a2e.py:tiny", "--config.task.model.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "pretrain_a2e.py" in err and "no field 'nope'" in err


def test_unknown_preset_is_refused(tmp_path, capsys):
    assert main(["adapt", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--config", "adapt_flashtalker.py:huge"]) == 2
    assert "adapt_flashtalker.py: unknown preset 'huge'" in capsys.readouterr().err


def test_help_imports_no_jax():
    code = ("import sys; from flashtalker_jax.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('jax', 'flax', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
