"""The wheel holds every module of the checkout, and the checkout shadows nothing.

Tests import the checkout (`python -m pytest` from the repository root puts it first on
sys.path; flashtalker_jax/kernels and flashtalker_jax/configs are symlinks to the top-level
folders), while users import the installed wheel: these tests tie the two together.
"""
import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL = (("flashtalker_jax", "flashtalker_jax"), ("kernels", "flashtalker_jax.kernels"),
             ("configs", "flashtalker_jax.configs"))


def _source_modules():
    """(path relative to the repository, installed path) of every shipped .py file."""
    for root, mapped in TOP_LEVEL:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO / root).parts
            if {"__pycache__", "tests"} & set(parts) or (root == "flashtalker_jax" and parts[0] in ("kernels", "configs")):
                continue
            yield path.relative_to(REPO).as_posix(), "/".join((*mapped.split("."), *parts))


def _source_packages():
    for root, mapped in TOP_LEVEL:
        for folder in sorted((REPO / root).rglob("*")):
            parts = folder.relative_to(REPO / root).parts
            if (folder.is_dir() and parts and not {"__pycache__", "tests"} & set(parts)
                    and not (root == "flashtalker_jax" and parts[0] in ("kernels", "configs"))
                    and any(folder.glob("*.py"))):
                yield folder, ".".join((mapped, *parts))


def test_every_source_folder_below_the_top_is_a_package():
    assert len(list(_source_packages())) > 10
    missing = [str(f.relative_to(REPO)) for f, _ in _source_packages() if not (f / "__init__.py").exists()]
    assert not missing, f"folders without __init__.py (left out of the wheel): {missing}"
    for name in ("kernels", "configs"):
        assert not (REPO / name / "__init__.py").exists(), (
            f"{name}/__init__.py would make `{name}` a top-level package that shadows the "
            f"distribution of that name whenever the checkout is on sys.path")
        assert (REPO / "flashtalker_jax" / name).resolve() == (REPO / name)


def test_every_source_package_imports():
    for _, name in _source_packages():
        assert importlib.import_module(name).__name__ == name
    assert importlib.import_module("flashtalker_jax.kernels.rasterize.gpu")


def test_the_checkout_does_not_shadow_the_kernels_distribution():
    """transformers imports Hugging Face's `kernels`; from the repository root (cwd on
    sys.path) that import must still find the distribution, not our kernels/ folder."""
    code = "import kernels, transformers.integrations; print(kernels.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip()).resolve().parent != REPO / "kernels"


def test_the_installed_distribution_ships_every_module():
    dist = importlib.metadata.distribution("flashtalker-jax")
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        # An editable install imports this checkout itself: nothing can be missing.
        assert json.loads(direct)["url"].endswith(REPO.name)
        return
    shipped = {str(f) for f in dist.files or ()}
    missing = [src for src, installed in _source_modules() if installed not in shipped]
    assert len(list(_source_modules())) > 50
    assert not missing, f"modules missing from the installed wheel (reinstall?): {missing}"


def test_config_files_ship_with_the_package():
    from flashtalker_jax.config import CONFIG_DIR, find_config

    for name in ("demo", "adapt_flashtalker", "pretrain_a2e", "data_synth", "common"):
        assert find_config(name).parent == CONFIG_DIR
