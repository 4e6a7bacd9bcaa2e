"""Python config files (ml_collections) with presets and `--config.path.to.field=value` overrides.

A config file defines `get_config(preset=None) -> ml_collections.ConfigDict` (or
`get_config()` when it has no presets). `--config file.py:name` passes the preset `name`
(big_vision's `file.py:arg`); configs/common.py has the helpers configs compose from.
Overrides are applied after the preset, so explicit overrides win; they are parsed with
`ast.literal_eval` (falling back to the raw string) and must name existing fields;
ConfigDict keeps each field's type, so `--config.optim.lr=abc` is refused.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
from pathlib import Path
from typing import Sequence

import ml_collections

from flashtalker_jax.errors import ConfigError


# configs/ sits at the repository top level; flashtalker_jax/configs links to it, so the
# checkout and the installed package (where setuptools copies the files) agree.
CONFIG_DIR = Path(__file__).parent / "configs"
OVERRIDE_PREFIX = "--config."
# config.preset records the preset chosen by `file.py:NAME`; overriding the field would
# record a preset that was never applied, so it is refused.
PRESET_FIELD = "preset"


def find_config(name_or_path: str | os.PathLike) -> Path:
    """Resolve `configs/x.py`, `x.py` or `x` to a config file path."""
    candidates = [Path(name_or_path)]
    name = Path(name_or_path).name
    if not name.endswith(".py"):
        name += ".py"
    candidates.append(CONFIG_DIR / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{name_or_path}: config file not found (looked in . and {CONFIG_DIR})")


def split_preset(name_or_path: str | os.PathLike) -> tuple[str, str | None]:
    """`configs/x.py:tiny` -> ("configs/x.py", "tiny"); no `:` in the file name -> (path, None)."""
    text = os.fspath(name_or_path)
    head, sep, preset = text.rpartition(":")
    if not sep or "/" in preset or os.sep in preset:
        return text, None
    return head, preset


def _strip(item: str) -> str:
    return item[len(OVERRIDE_PREFIX):] if item.startswith(OVERRIDE_PREFIX) else item.lstrip("-")


def _refuse_preset_override(overrides: Sequence[str], path: Path) -> None:
    for item in overrides:
        if _strip(item).partition("=")[0] == PRESET_FIELD:
            raise ConfigError(f"{path}: {item!r} does not apply a preset; select one with "
                              f"--config {path.name}:NAME")


def load_config(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load `file.py` or `file.py:preset` and apply `field.sub=value` (or `--config.field.sub=value`)
    overrides after the preset."""
    name, preset = split_preset(name_or_path)
    path = find_config(name)
    _refuse_preset_override(overrides, path)
    spec = importlib.util.spec_from_file_location(f"flashtalker_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's config file: report which file failed
        raise ConfigError(f"{path}: failed to execute config file: {exc}") from exc
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: config file defines no get_config()")
    takes_preset = bool(inspect.signature(module.get_config).parameters)
    if preset is not None and not takes_preset:
        raise ConfigError(f"{path}: has no presets (get_config takes no argument), got {path.name}:{preset}")
    try:
        config = module.get_config(preset) if takes_preset else module.get_config()
    except ConfigError as exc:  # e.g. an unknown preset: name the file
        raise ConfigError(f"{path}: {exc}") from exc
    apply_overrides(config, overrides, source=str(path))
    return config


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str], source: str = "config") -> None:
    for item in overrides:
        item = _strip(item)
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected field.path=value")
        key, raw = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if part not in node:
                raise ConfigError(f"override {key!r}: {source} has no field {part!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"override {key!r}: {source} has no field {leaf!r}")
        value = _parse_value(raw)
        if isinstance(node[leaf], float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"override {key}={raw}: {exc}") from exc


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate `--config.a.b=v` overrides from the other arguments."""
    overrides = [a for a in argv if a.startswith(OVERRIDE_PREFIX)]
    rest = [a for a in argv if not a.startswith(OVERRIDE_PREFIX)]
    return rest, overrides


def save_config(config: ml_collections.ConfigDict, run_dir: str | os.PathLike) -> Path:
    """Write the resolved config as JSON next to a run's outputs."""
    path = Path(run_dir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def config_from_json(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Read back a config saved by `save_config`."""
    try:
        return ml_collections.ConfigDict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read saved config: {exc}") from exc
