"""Every registered trainer task imports, and every config's task.name is registered."""
import importlib

import pytest

from flashtalker_jax.config import CONFIG_DIR, load_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.train.tasks import TASKS, get_task


@pytest.mark.parametrize("name", sorted(TASKS))
def test_registered_factories_import(name):
    module_name, factory = TASKS[name].split(":")
    assert callable(getattr(importlib.import_module(module_name), factory))


def test_config_task_names_are_registered():
    named = {}
    for path in sorted(CONFIG_DIR.glob("[!_]*.py")):
        if "def get_config(" not in path.read_text():
            continue   # a helper module configs compose from (configs/common.py)
        config = load_config(path)
        if "task" in config and "name" in config.task:
            named[path.name] = config.task.name
    assert {"train_toy.py", "pretrain_a2e.py", "audio2param.py", "adapt_flashtalker.py"} <= set(named)
    unknown = {f: n for f, n in named.items() if n not in TASKS}
    assert not unknown, f"configs name unregistered tasks: {unknown}"


def test_unknown_task_is_a_config_error():
    config = load_config("train_toy", ["--config.task.name=nope"])
    with pytest.raises(ConfigError, match="not a known task"):
        get_task(config.task)
