"""Shared fixtures: one procedural FLAME folder per test session, written through the CLI
(`flashtalker head synth`), so the command is exercised by every session."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def flame_dir(tmp_path_factory):
    from flashtalker_jax.cli.main import main
    out = tmp_path_factory.mktemp("procedural_head")
    report = out / "synth.json"
    assert main(["head", "synth", "--out", str(out), "--seed", "0", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["seed"] == 0
    return out / "flame"


@pytest.fixture(scope="session")
def flame_model(flame_dir):
    from flashtalker_jax.flame import load_flame_model
    return load_flame_model(flame_dir)
