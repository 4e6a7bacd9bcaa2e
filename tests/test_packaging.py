"""The installed package must hold every module: tests run against the install, not the source.

A source folder without __init__.py works from a checkout (namespace package) but is
left out of the wheel by setup.py's find_packages; this caught flashtalker_jax/avatar.
"""
import importlib
from pathlib import Path

import flashtalker_jax

REPO = Path(__file__).resolve().parent.parent


def _source_packages():
    for root, mapped in (("flashtalker_jax", "flashtalker_jax"), ("kernels", "flashtalker_jax.kernels"),
                         ("configs", "flashtalker_jax.configs")):
        for folder in sorted((REPO / root).rglob("*")):
            parts = folder.relative_to(REPO / root).parts
            if folder.is_dir() and not {"__pycache__", "tests"} & set(parts) and any(folder.glob("*.py")):
                yield folder, ".".join((mapped, *parts))


def test_every_source_folder_with_modules_is_a_package():
    assert len(list(_source_packages())) > 10
    missing = [str(f.relative_to(REPO)) for f, _ in _source_packages() if not (f / "__init__.py").exists()]
    assert not missing, f"folders without __init__.py (left out of the wheel): {missing}"


def test_every_source_package_imports_from_the_installed_package():
    for _, name in _source_packages():
        module = importlib.import_module(name)
        assert module.__name__ == name
    assert importlib.import_module("flashtalker_jax.kernels.rasterize.gpu")
    assert Path(flashtalker_jax.__file__).name == "__init__.py"


def test_config_files_ship_with_the_package():
    from flashtalker_jax.config import CONFIG_DIR, find_config

    assert (CONFIG_DIR / "__init__.py").exists()
    for name in ("demo", "demo_quick", "adapt_flashtalker", "pretrain_a2e", "data_synth"):
        assert find_config(name).parent == CONFIG_DIR
