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


PRESET_TEXT = '''
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset=None):
    c = ml_collections.ConfigDict()
    c.optim = common.optim("adam", 1e-3)
    c.train = common.train(100)
    return common.with_preset(c, preset, {"tiny": _tiny})


def _tiny(c):
    c.train.steps = 2
'''


@pytest.fixture
def preset_file(tmp_path):
    path = tmp_path / "withpresets.py"
    path.write_text(PRESET_TEXT)
    return path


def test_preset_is_the_argument_after_the_colon(preset_file):
    assert load_config(preset_file).train.steps == 100
    tiny = load_config(f"{preset_file}:tiny")
    assert tiny.train.steps == 2 and tiny.preset == "tiny"
    # Explicit overrides are applied after the preset, so they win.
    assert load_config(f"{preset_file}:tiny", ["--config.train.steps=7"]).train.steps == 7


@pytest.mark.parametrize("spec, overrides, message", [
    (":huge", [], "withpresets.py: unknown preset 'huge'"),
    (":tiny", ["--config.preset=other"], "does not apply a preset; select one with --config withpresets.py:NAME"),
    ("", ["--config.preset=tiny"], "does not apply a preset"),
])
def test_bad_presets_name_the_file(preset_file, spec, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(f"{preset_file}{spec}", overrides)


def test_a_config_without_presets_refuses_one(config_file):
    with pytest.raises(ConfigError, match="toy.py: has no presets"):
        load_config(f"{config_file}:tiny")


def test_preset_functions_cannot_add_fields(preset_file, tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(PRESET_TEXT.replace("c.train.steps = 2", "c.train.stepz = 2"))
    with pytest.raises(Exception, match="stepz"):
        load_config(f"{path}:tiny")


@pytest.mark.parametrize("spec, preset", [
    ("configs/pretrain_a2e.py:tiny", "tiny"), ("pretrain_a2e:cpu", "cpu"), ("configs/x.py", None),
    ("/a/b:c/x.py", None),
])
def test_split_preset(spec, preset):
    from flashtalker_jax.config import split_preset

    assert split_preset(spec)[1] == preset


def test_shipped_presets_keep_their_numbers():
    tiny = load_config("pretrain_a2e.py:tiny")
    assert (tiny.task.model.d_model, tiny.task.batch_size, tiny.train.steps, tiny.optim.lr) == (64, 8, 100, 1e-3)
    assert load_config("audio2param.py:cpu").train.steps == 1200
    assert load_config("adapt_a2e.py:tiny").early_stop.eval_every == 10
    cpu = load_config("adapt_flashtalker.py:cpu")
    assert (cpu.task.resolution, cpu.task.placement.uv_resolution, cpu.train.steps) == (256, 96, 3000)
    # The shared blocks: motion configs differ only in the numbers they own.
    prior, a2p = load_config("pretrain_a2e"), load_config("audio2param")
    assert prior.task.augment.to_dict() == a2p.task.augment.to_dict()
    assert {**prior.optim.to_dict(), "lr": 0} == {**a2p.optim.to_dict(), "lr": 0}


def test_demo_nests_each_stage_config():
    demo = load_config("demo")
    assert demo.adapt.task.resolution == 256 and demo.adapt.preset == "cpu"
    assert "a2e" not in demo and demo.face_landmarker == ""   # speech: the bundled motion prior
    assert demo.data.synth.render.width == 256
    quick = load_config("demo.py:quick", ["--config.adapt.train.steps=5"])
    assert quick.adapt.train.steps == 5 and quick.adapt.task.render.backend == "reference"
    prior = load_config("motion_prior")
    assert prior.pretrain.task.name == "audio2param" and prior.pretrain.preset == "bundled"
    assert not set(prior.data.synth.speech.variants) & {"f3", "m3", "klatt2"}
