"""Tasks the trainer can run, by name (`config.task.name`).

A task supplies the model, the loss and the data; the trainer does everything else.
Register a new task with one line in TASKS: "name": "module.path:factory", where
`factory(config.task) -> Task` (imported only when that task runs).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

import ml_collections

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.train.data import DataIterator
from flashtalker_jax.train.state import ModelFactory
from flashtalker_jax.train.step import LossFn

TASKS: dict[str, str] = {
    "toy_regression": "flashtalker_jax.train.toy:make_task",
    "avatar_adapt": "flashtalker_jax.avatar.adapt:make_task",
    "a2e_prior": "flashtalker_jax.motion.tasks:make_task",
    "audio2param": "flashtalker_jax.motion.tasks:make_task",
    "talk2me_eg": "flashtalker_jax.motion.tasks:make_task",
    "genfacetalk_audio": "flashtalker_jax.motion.tasks:make_task",
    "body_inpainter": "flashtalker_jax.composite.train_inpainter:make_task",
    "pose_refiner": "flashtalker_jax.motion.pose.refiner:make_task",
    "e2v_prior": "flashtalker_jax.e2v.task:make_task",
    "motion_encoder": "flashtalker_jax.encoder.task:make_task",
}


@dataclasses.dataclass(frozen=True)
class Task:
    """make_model(rngs) -> nnx.Module; loss_fn(model, batch, key) -> (loss, metrics);
    make_data(process_index, process_count) -> iterator of this process's batches with
    get_state()/set_state() (rows of each global batch are split across processes)."""
    make_model: ModelFactory
    loss_fn: LossFn
    make_data: Callable[[int, int], DataIterator]


def get_task(task_config: ml_collections.ConfigDict) -> Task:
    name = task_config.name
    if name not in TASKS:
        raise ConfigError(f"task.name={name!r} is not a known task (known: {sorted(TASKS)})")
    module_name, factory = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), factory)(task_config)
