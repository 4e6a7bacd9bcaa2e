"""Test-wide conventions (applies to tests/ and to the kernel tests under kernels/).

Seeds: every test or fixture that takes an argument named `seed` runs once per seed in
FLASHTALKER_TEST_SEEDS (comma-separated integers, default "0"), so a failure always names
a reproducible seed, and a wider sweep is one variable away:
    FLASHTALKER_TEST_SEEDS=0,1,2,3 python -m pytest kernels tests/render
"""
from __future__ import annotations

import os

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
        metafunc.parametrize("seed", test_seeds(), scope="module",
                             ids=[f"seed{s}" for s in test_seeds()])
