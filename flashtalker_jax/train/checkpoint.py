"""Orbax checkpoints: train state + data iterator state + resolved config, one step folder.

Layout: <run>/checkpoints/<step>/{state, data, config}. `state` is the TrainState (sharded
arrays, written asynchronously), `data` one JSON file per process with that process's
iterator state, `config` the resolved config as JSON.

Interrupted writes: Orbax writes each step into a temporary folder and renames it when
complete, and removes leftover temporary folders on start. A step folder that is present
but unreadable (truncated files on a filesystem without atomic rename, a partial copy) is
found at restore: it is moved to <run>/corrupt_checkpoints/<step> and the previous step is
used. A checkpoint that is readable but does not fit the model (changed config) is an
error, never silently skipped.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.train.state import key_path_str

log = logging.getLogger(__name__)


class IteratorStateHandler(ocp.CheckpointHandler):
    """Saves `iterator.get_state()` (dict, or bytes as base64) as process_<i>-of-<n>.json.

    Resuming on another number of processes (a pretraining job moved to more or fewer
    hosts) works for iterators whose state is a position in one global order that every
    process walks (`global_state = True`: ArrayBatchIterator, the motion CropIterator):
    all saved files must agree, and any of them restores every new process. Other
    iterators (grain's hold per-process read positions) must resume on the same count.
    """

    @staticmethod
    def _file(directory: epath.Path) -> epath.Path:
        return directory / f"process_{jax.process_index()}-of-{jax.process_count()}.json"

    def save(self, directory: epath.Path, args: "IteratorSave") -> None:
        state = args.item.get_state()
        payload = {"bytes_b64": base64.b64encode(state).decode()} if isinstance(state, bytes) else state
        self._file(directory).write_text(json.dumps(payload))

    def restore(self, directory: epath.Path, args: "IteratorRestore") -> Any:
        path = self._file(directory)
        if path.exists():
            payload = json.loads(path.read_text())
        else:
            payload = self._global_payload(directory, path, args.item)
        state = base64.b64decode(payload["bytes_b64"]) if "bytes_b64" in payload else payload
        args.item.set_state(state)
        return args.item

    @staticmethod
    def _global_payload(directory: epath.Path, path: epath.Path, item: Any) -> dict:
        """The one state all processes of another process count saved (global iterators only)."""
        saved = sorted(directory.glob("process_*-of-*.json"), key=lambda p: p.name)
        names = [p.name for p in saved]
        if not getattr(item, "global_state", False) or not saved:
            raise ConfigError(f"{path}: no data-iterator state for this process (saved: {names}); "
                              f"{type(item).__name__} keeps per-process state, so resume with the "
                              "same number of processes as the run that saved it")
        payloads = [json.loads(p.read_text()) for p in saved]
        if any(p != payloads[0] for p in payloads[1:]):
            raise ConfigError(f"{directory}: the saved processes' data states differ ({names}), "
                              "so they cannot be merged for another process count")
        log.info("data state of %d processes (%s) restored in process %d of %d", len(saved), names[0],
                 jax.process_index(), jax.process_count())
        return payloads[0]

    def metadata(self, directory: epath.Path) -> None:
        return None

    def finalize(self, directory: epath.Path) -> None:
        pass

    def close(self) -> None:
        pass


@ocp.args.register_with_handler(IteratorStateHandler, for_save=True)
@dataclasses.dataclass
class IteratorSave(ocp.args.CheckpointArgs):
    item: Any


@ocp.args.register_with_handler(IteratorStateHandler, for_restore=True)
@dataclasses.dataclass
class IteratorRestore(ocp.args.CheckpointArgs):
    item: Any


def _flat_paths(tree: Any) -> dict[str, Any]:
    return {key_path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _metadata_leaves(tree: Any) -> dict[str, Any]:
    """Orbax's metadata tree as {"a/b/c": leaf metadata} (leaves have .shape)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {key_path_str(p): v for p, v in leaves if hasattr(v, "shape")}


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


class Checkpointer:
    """A CheckpointManager for one run folder's checkpoints."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save,
                                               cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data": IteratorStateHandler(),
                           "config": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any, config: Mapping[str, Any]) -> float:
        """Start saving `step`; returns the seconds the caller was blocked."""
        start = time.perf_counter()
        self._manager.save(step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=IteratorSave(data_iterator),
            config=ocp.args.JsonSave(dict(config))))
        return time.perf_counter() - start

    def check_fits(self, step: int, target: Any) -> None:
        """Raise ConfigError when step's saved state has other leaves or shapes than target.

        Unreadable metadata raises whatever Orbax raises (treated as corruption by the caller).
        """
        saved = _metadata_leaves(self._manager.item_metadata(step)["state"].tree)
        wanted = _flat_paths(target)
        missing = sorted(set(wanted) - set(saved))
        extra = sorted(set(saved) - set(wanted))
        wrong = sorted(k for k in set(wanted) & set(saved) if tuple(saved[k].shape) != tuple(wanted[k].shape))
        if missing or extra or wrong:
            detail = "; ".join(f"{name}: {keys[:4]}" for name, keys in
                               (("missing", missing), ("unexpected", extra), ("other shape", wrong)) if keys)
            raise ConfigError(f"{self.directory / str(step)}: checkpoint does not fit this model ({detail}); "
                              "use the config the run was started with")

    def restore_latest(self, target: Any, data_iterator: Any | None = None) -> tuple[Any, int] | None:
        """Restore the newest readable step into `target` (ShapeDtypeStructs with shardings)
        and, when given, the data iterator; returns (state, step) or None when there is no
        checkpoint. Without an iterator any process count can read the state (e.g. a
        checkpoint written by 2 processes restored by 1 for evaluation or export)."""
        for step in reversed(self.all_steps()):
            try:
                self._metadata_readable(step)
            except Exception as exc:  # noqa: BLE001 - unreadable metadata means a damaged folder
                self._quarantine(step, exc)
                continue
            self.check_fits(step, target)
            try:
                items = {"state": ocp.args.StandardRestore(target)}
                if data_iterator is not None:
                    items["data"] = IteratorRestore(data_iterator)
                restored = self._manager.restore(step, args=ocp.args.Composite(**items))
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - any read failure of a fitting checkpoint = damage
                self._quarantine(step, exc)
                continue
            return restored.state, step
        return None

    def _metadata_readable(self, step: int) -> None:
        if self._manager.item_metadata(step)["state"] is None:
            raise ValueError("no state metadata")

    def _quarantine(self, step: int, exc: Exception) -> None:
        dest = self.directory.parent / "corrupt_checkpoints" / str(step)
        log.warning("checkpoint step %d in %s is unreadable (%s: %s); moved to %s, using the previous one",
                    step, self.directory, type(exc).__name__, str(exc)[:200], dest)
        if jax.process_index() == 0:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            shutil.move(str(self.directory / str(step)), str(dest))
        _sync(f"flashtalker_quarantine_{step}")
        self._manager.reload()

    def saved_config(self, step: int) -> dict:
        return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config

    def reached_preemption(self, step: int) -> bool:
        """The multi-process preemption sync point (False when not distributed)."""
        return self._manager.reached_preemption(step)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def restore_subtree(directory: str | os.PathLike, target: Mapping[str, jax.ShapeDtypeStruct],
                    source_prefix: str, step: int | None = None) -> dict[str, jax.Array]:
    """Read only some leaves of a saved TrainState (e.g. a pretrained prior's params).

    target: {"relative/leaf/path": ShapeDtypeStruct with sharding}; each is read from
    "<source_prefix>/<relative path>" (prefix like "params" or "params/prior") and placed
    with the target's sharding, so the source mesh does not matter.
    Returns {"relative/leaf/path": array}.
    """
    directory = Path(directory).absolute()
    manager = ocp.CheckpointManager(directory, item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                                         "data": IteratorStateHandler(),
                                                         "config": ocp.JsonCheckpointHandler()},
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise ModelFileError(directory, "no checkpoint found", "point init_from at a run's checkpoints/ folder")
        saved = _metadata_leaves(manager.item_metadata(step)["state"].tree)
        prefix = [p for p in source_prefix.split("/") if p]
        nested: dict = {}
        for rel, sds in target.items():
            full = "/".join(prefix + rel.split("/"))
            if full not in saved or tuple(saved[full].shape) != tuple(sds.shape):
                found = tuple(saved[full].shape) if full in saved else "absent"
                raise ModelFileError(directory / str(step), f"leaf {full} is {found}, wanted {tuple(sds.shape)}",
                                     "check init_from_prefix / init_into")
            _set_nested(nested, prefix + rel.split("/"), sds)
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            nested, restore_args=ocp.checkpoint_utils.construct_restore_args(nested), partial_restore=True)))
        return {rel: _get_nested(restored.state, prefix + rel.split("/")) for rel in target}
    finally:
        manager.close()


def _set_nested(tree: dict, keys: Sequence[str], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def _get_nested(tree: Mapping, keys: Sequence[str]) -> Any:
    for key in keys:
        tree = tree[key]
    return tree
