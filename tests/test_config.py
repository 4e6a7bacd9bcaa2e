"""Config files and command-line overrides."""
import json

import pytest

from flashtalker_jax.config import apply_overrides, config_from_json, load_config, save_config, split_overrides
from flashtalker_jax.errors import ConfigError

CONFIG_TEXT = '''
import ml_collections

def get_config():
    c = ml_collections.ConfigDict()
    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-3
    c.optim.steps = 100
    c.name = "toy"
    return c
'''


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(CONFIG_TEXT)
    return path


def test_overrides_parse_and_keep_types(config_file):
    config = load_config(config_file, ["--config.optim.lr=1e-4", "--config.optim.steps=7", "--config.name=other"])
    assert config.optim.lr == pytest.approx(1e-4)
    assert config.optim.steps == 7
    assert config.name == "other"


def test_int_literal_for_float_field_is_accepted(config_file):
    assert load_config(config_file, ["--config.optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("--config.optim.nope=1", "no field 'nope'"),
    ("--config.nothere.lr=1", "no field 'nothere'"),
    ("--config.optim.steps=abc", "optim.steps=abc"),
    ("--config.optim.lr", "expected field.path=value"),
])
def test_bad_overrides_are_refused(config_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, [override])


def test_missing_config_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="no_such_config"):
        load_config(tmp_path / "no_such_config.py")


def test_save_and_reload_round_trip(config_file, tmp_path):
    config = load_config(config_file, ["--config.optim.steps=3"])
    path = save_config(config, tmp_path / "run")
    assert json.loads(path.read_text())["optim"]["steps"] == 3
    assert config_from_json(path).to_dict() == config.to_dict()


def test_split_overrides():
    rest, overrides = split_overrides(["adapt", "--data", "d", "--config.optim.lr=2"])
    assert rest == ["adapt", "--data", "d"] and overrides == ["--config.optim.lr=2"]
    config = load_config.__globals__["ml_collections"].ConfigDict({"a": 1})
    apply_overrides(config, ["a=2"])
    assert config.a == 2
