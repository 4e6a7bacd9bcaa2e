"""Test-wide conventions (applies to tests/ and to the kernel tests under kernels/):
fixed seeds, the shared real media, and strict skips in CI.

Seeds: every test or fixture that takes an argument named `seed` runs once per seed in
FLASHTALKER_TEST_SEEDS (comma-separated integers, default "0"), so a failure always names
a reproducible seed, and a wider sweep is one variable away:
    FLASHTALKER_TEST_SEEDS=0,1,2,3 python -m pytest kernels tests/render
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

SEEDS_VARIABLE = "FLASHTALKER_TEST_SEEDS"


def test_seeds() -> list[int]:
    text = os.environ.get(SEEDS_VARIABLE, "0")
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{SEEDS_VARIABLE}={text!r}: expected comma-separated integers")
    if not seeds:
        raise SystemExit(f"{SEEDS_VARIABLE}={text!r}: names no seed")
    return seeds


test_seeds.__test__ = False   # a helper, not a test


def pytest_generate_tests(metafunc):
    if "seed" in metafunc.fixturenames:
        seeds = test_seeds()
        metafunc.parametrize("seed", seeds, scope="module", ids=[f"seed{s}" for s in seeds])


# --------------------------------------------------------------------------- shared media
# The real media (videos, speech, MediaPipe models) live in ../shared/data beside the
# checkout. Tests that need them take the `shared_data` fixture: it skips only when the
# whole folder is absent; a file missing from a present folder fails the test.

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test media absent ({SHARED_DATA})")
    return SHARED_DATA


# --------------------------------------------------------------------------- tiny procedural set
# Two procedural identities (64x64 frames, 2 s) sharing one procedural FLAME head, in the
# data-synth layout (DS/flame, DS/identity_00k), generated once per session and only read
# by its users (tests/e2v, tests/encoder).

@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.dataset import synthesize_dataset

    out = tmp_path_factory.mktemp("tiny_synth") / "ds"
    cfg = load_config("data_synth", ["render.width=64", "render.height=64", "render.texture_size=256",
                                     "render.workers=1"])  # tiny frames: no process pool
    synthesize_dataset(out, 2, 2.0, 0, cfg, show_progress=False)
    return out


# --------------------------------------------------------------------------- strict skips
# With FLASHTALKER_STRICT_SKIPS=1 (.ci/run sets it) any skip not matched by a line of
# tests/allowed_skips.txt fails the run: a test must never pass by skipping what matters.

ALLOWED_SKIPS = Path(__file__).resolve().parent / "tests" / "allowed_skips.txt"
_skips: list[tuple[str, str]] = []


def allowed_skip_patterns() -> list[str]:
    lines = ALLOWED_SKIPS.read_text().splitlines() if ALLOWED_SKIPS.is_file() else []
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("FLASHTALKER_STRICT_SKIPS") != "1":
        return
    patterns = allowed_skip_patterns()
    unexpected = [(node, why) for node, why in _skips
                  if not any(fnmatch.fnmatch(node, pattern) for pattern in patterns)]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"skips: {len(_skips)} ({len(_skips) - len(unexpected)} allowed by "
                            f"{ALLOWED_SKIPS.name}), unexpected: {len(unexpected)}")
        for node, why in unexpected:
            reporter.write_line(f"UNEXPECTED SKIP {node}: {why}")
    if unexpected and session.exitstatus == 0:
        session.exitstatus = 1
