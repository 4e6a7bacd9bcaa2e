"""Numeric and list options are checked by argparse (flashtalker_jax/cli/options.py): a bad value
is a one-line usage error naming the option, never a traceback from deep inside a job; and
`bench` exits non-zero when a row errored."""
from __future__ import annotations

import argparse
import json

import pytest

from flashtalker_jax.cli import options
from flashtalker_jax.cli.main import build_parser, main

# Minimal valid arguments of each command (values are never used: parsing only).
BASE = {
    "synth-a2e-data": ["synth-a2e-data", "--out", "O"],
    "eval-a2e": ["eval-a2e", "--a2e", "R", "--data", "D", "--report", "r.json"],
    "bench raster": ["bench", "raster"],
    "bench avatar": ["bench", "avatar", "--data", "D"],
    "bench speak": ["bench", "speak", "--avatar", "A", "--a2e", "R"],
    "speak": ["speak", "--avatar", "A", "--audio", "a.wav", "--a2e", "R", "--out", "o.mp4"],
    "data synth": ["data", "synth", "--out", "O"],
    "data views": ["data", "views", "--data", "D", "--out", "O"],
    "head synth": ["head", "synth", "--out", "O"],
    "head demo": ["head", "demo", "--out", "O"],
    "eval": ["eval", "--avatar", "A", "--data", "D", "--setting", "self", "--report", "r.json"],
    "train": ["train", "--config", "c.py"],
}

# (command, option, bad value, what the message says)
BAD = [
    ("speak", "--size", "0", "a positive integer"),
    ("speak", "--size", "-64", "a positive integer"),
    ("speak", "--fps", "0", "a positive number"),
    ("speak", "--fps", "nan", "a positive number"),
    ("speak", "--fps", "fast", "a positive number"),
    ("speak", "--sample-steps", "0", "a positive integer"),
    ("speak", "--batch", "0", "a positive integer"),
    ("speak", "--batch", "2.5", "a positive integer"),
    ("speak", "--seed", "-1", "a seed"),
    ("eval", "--batch", "-3", "a positive integer"),
    ("eval", "--max-frames", "-1", "an integer >= 0"),
    ("eval", "--sample-steps", "0", "a positive integer"),
    ("eval", "--seed", str(2 ** 40), "a seed"),
    ("eval-a2e", "--sample-steps", "-2", "a positive integer"),
    ("eval-a2e", "--guidance", "-1", "a number >= 0"),
    ("eval-a2e", "--guidance", "inf", "a number >= 0"),
    ("eval-a2e", "--seed", "x", "a seed"),
    ("synth-a2e-data", "--identities", "0", "a positive integer"),
    ("synth-a2e-data", "--first", "-1", "an integer >= 0"),
    ("synth-a2e-data", "--seconds", "0", "a positive number"),
    ("synth-a2e-data", "--seed", "-5", "a seed"),
    ("data synth", "--identities", "0", "a positive integer"),
    ("data synth", "--seconds", "-1", "a positive number"),
    ("data synth", "--seed", "1.5", "a seed"),
    ("data views", "--yaw", "200", "an angle in degrees, -180..180"),
    ("data views", "--pitch", "nan", "an angle in degrees, -180..180"),
    ("head synth", "--seed", "-1", "a seed"),
    ("head demo", "--size", "0", "a positive integer"),
    ("bench raster", "--sizes", "10k,", "a comma-separated list of positive integers"),
    ("bench raster", "--sizes", "0", "a comma-separated list of positive integers"),
    ("bench raster", "--sizes", "10q", "a comma-separated list of positive integers"),
    ("bench raster", "--batch", "", "a comma-separated list of positive integers"),
    ("bench raster", "--width", "0", "a positive integer"),
    ("bench raster", "--height", "-8", "a positive integer"),
    ("bench raster", "--runs", "0", "a positive integer"),
    ("bench raster", "--backends", "pallas,,", "a comma-separated list of names"),
    ("bench avatar", "--sizes", "a", "a comma-separated list of positive integers"),
    ("bench avatar", "--batch", "1,-4", "a comma-separated list of positive integers"),
    ("bench avatar", "--runs", "0", "a positive integer"),
    ("bench avatar", "--configs", ",", "a comma-separated list of names"),
    ("bench speak", "--batch", "1,x", "a comma-separated list of positive integers"),
    ("bench speak", "--size", "0", "a positive integer"),
    ("bench speak", "--seconds", "0", "a positive number"),
    ("train", "--num-processes", "0", "a positive integer"),
    ("train", "--process-id", "-1", "an integer >= 0"),
]


@pytest.mark.parametrize("command,option,value,says", BAD, ids=[f"{c}{o}={v}" for c, o, v, _ in BAD])
def test_bad_numeric_options_are_usage_errors_naming_the_option(command, option, value, says, capsys):
    with pytest.raises(SystemExit) as info:
        main([*BASE[command], f"{option}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"error: argument {option}: expected {says}" in last and last.endswith(f"got '{value}'"), err


def test_good_values_parse():
    parse = build_parser().parse_args
    args = parse([*BASE["bench raster"], "--sizes", " 10k, 1.5m ,7", "--batch", "1,16", "--backends", "pallas, tiles"])
    assert args.sizes == [10_000, 1_500_000, 7] and args.batch == [1, 16] and args.backends == ["pallas", "tiles"]
    args = parse([*BASE["bench avatar"], "--sizes", "64", "--batch", "1,4", "--configs", "adapt_flashtalker, x.py:cpu"])
    assert args.sizes == [64] and args.batch == [1, 4] and args.configs == ["adapt_flashtalker", "x.py:cpu"]
    assert parse(BASE["bench avatar"]).configs is None   # run_bench: the defaults with --data, none without
    assert parse(BASE["bench speak"]).batch == [1, 16]
    args = parse([*BASE["speak"], "--size", "96", "--fps", "30", "--batch", "2", "--sample-steps", "5"])
    assert (args.size, args.fps, args.batch, args.sample_steps) == (96, 30.0, 2, 5)
    args = parse([*BASE["eval"], "--max-frames", "0", "--seed", str(2 ** 32 - 1)])
    assert args.max_frames == 0 and args.seed == 2 ** 32 - 1
    assert parse([*BASE["eval-a2e"], "--guidance", "0"]).guidance == 0.0
    args = parse([*BASE["data views"], "--yaw", "30", "--yaw=-30", "--pitch", "-10.5"])
    assert (args.yaw, args.pitch) == ([30.0, -30.0], -10.5)


def _numeric_actions(parser: argparse.ArgumentParser, words=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _numeric_actions(sub, (*words, name))
        else:
            yield " ".join(words), action


def test_every_numeric_option_uses_a_checked_type():
    for command, action in _numeric_actions(build_parser()):
        assert action.type not in (int, float), f"{command} {action.option_strings}: use cli/options.py types"


# ----------------------------------------------------------------------------- bench exit codes

def test_bench_raster_exits_non_zero_when_a_row_errored(monkeypatch, tmp_path, capsys):
    from flashtalker_jax.render import bench

    def run(sizes, batches, backends, width, height, runs, progress=None, on_row=None, scene="blob"):
        rows = [{"backend": "reference", "gaussians": 10, "cameras": 1, "fwd_ms": 1.0},
                {"backend": "pallas", "gaussians": 10, "cameras": 1, "error": "RESOURCE_EXHAUSTED: out of memory"}]
        return rows, []

    monkeypatch.setattr(bench, "run", run)
    report = tmp_path / "r.json"
    assert main(["bench", "raster", "--sizes", "10", "--batch", "1", "--report", str(report)]) == 1
    assert len(json.loads(report.read_text())["rows"]) == 2     # the report is still written
    err = capsys.readouterr().err
    assert "bench raster: 1 of 2 rows failed" in err and "RESOURCE_EXHAUSTED" in err


def test_bench_avatar_and_speak_exit_non_zero_when_a_row_errored(monkeypatch, tmp_path, capsys):
    from flashtalker_jax.avatar import bench as avatar_bench
    from flashtalker_jax.pipeline import bench as speak_bench

    monkeypatch.setattr(avatar_bench, "bench_avatar",
                        lambda *a, **k: [{"avatar": "x", "size": 64, "batch": 1, "error": "boom"}])
    assert main([*BASE["bench avatar"], "--report", str(tmp_path / "a.json")]) == 1
    monkeypatch.setattr(speak_bench, "bench_speak", lambda *a, **k: [{"batch": 1, "fps": 3.0}])
    assert main([*BASE["bench speak"], "--report", str(tmp_path / "s.json")]) == 0
    monkeypatch.setattr(speak_bench, "bench_speak", lambda *a, **k: [{"batch": 1, "error": "boom"}])
    assert main([*BASE["bench speak"], "--report", str(tmp_path / "s.json")]) == 1
    assert "bench speak: 1 of 1 rows failed" in capsys.readouterr().err


def test_types_are_plain_functions_without_numpy():
    assert options.positive_int("3") == 3 and options.count_list("2k") == [2000]
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer, got '0'"):
        options.positive_int("0")
