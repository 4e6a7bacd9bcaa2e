"""Orbax checkpoints: train state + data iterator state + resolved config, one step folder.

Layout: <run>/checkpoints/<step>/{state, data, config}. `state` is the TrainState (sharded
arrays, written asynchronously), `data` one JSON file per process with that process's
iterator state, `config` the resolved config as JSON.

Interrupted writes: Orbax writes each step into a temporary folder and renames it when
complete, and removes leftover temporary folders on start. Once a step is complete, process
0 writes a commit marker into it (COMMIT_MARKER: every file's path and size).

Damage is recognised, never guessed: a step is corrupt when its marker is unreadable or a
file it lists is missing or has another size (a partial copy, a filesystem without atomic
rename), or when Orbax/TensorStore fails with a missing-or-truncated-file error
(FileNotFoundError, a JSON decode error, TensorStore NOT_FOUND / OUT_OF_RANGE / DATA_LOSS;
steps without a marker, written before markers existed or killed between Orbax's rename
and the marker, rely on these alone). A corrupt step is moved to
<run>/corrupt_checkpoints/<step> once an older step has restored. Any other failure (out
of memory, an I/O error of the filesystem, a bug) stops the restore with that error, and
nothing is moved. When steps exist but none can be read, restore raises
UnreadableCheckpoints naming each step and why (nothing moved; `--restart` starts over).
A checkpoint that is readable but does not fit the model (changed config) is an error,
never silently skipped.
"""
from __future__ import annotations

import base64
import dataclasses
import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from flashtalker_jax.errors import ConfigError, ModelFileError, TrainingError
from flashtalker_jax.train.state import key_path_str

log = logging.getLogger(__name__)

COMMIT_MARKER = "flashtalker_commit.json"
# TensorStore status codes of a missing or short file (its errors are ValueErrors "CODE: ...").
_CORRUPT_STATUS = ("NOT_FOUND:", "OUT_OF_RANGE:", "DATA_LOSS:")
_OK, _CORRUPT, _ERROR = 0, 1, 2


class CorruptStep(Exception):
    """A step folder failed the integrity check (marker, missing item)."""


class UnreadableCheckpoints(TrainingError):
    """Checkpoints exist but every one is corrupt; `unreadable` is [(step, reason)], newest first."""

    def __init__(self, directory: Path, unreadable: list[tuple[int, str]]):
        self.directory, self.unreadable = directory, unreadable
        detail = "; ".join(f"step {step}: {why}" for step, why in unreadable)
        super().__init__(
            f"{directory}: checkpoints exist but none can be read ({detail}). Nothing was moved or "
            "deleted. Repair or copy the checkpoints back, or pass --restart to start over from step 0 "
            f"(the unreadable steps are then moved to {directory.parent / 'corrupt_checkpoints'})")


def is_corruption(exc: BaseException) -> bool:
    """Whether a restore error says a file is missing or truncated (see the module docstring);
    out-of-memory, other OS errors (EIO, permissions), TensorStore's other codes (e.g.
    FAILED_PRECONDITION, UNAVAILABLE) and everything else are not. Follows explicit
    chaining (`raise ... from`, as Orbax wraps TensorStore errors), not implicit context."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (CorruptStep, json.JSONDecodeError, UnicodeDecodeError)):
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
            return True
        if isinstance(exc, ValueError) and str(exc).startswith(_CORRUPT_STATUS):
            return True
        exc = exc.__cause__
    return False


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


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
        self._async = async_save
        self._unmarked: set[int] = set()  # steps saved here whose commit marker is not written yet
        self._state_handler = ocp.StandardCheckpointHandler()  # restores (see _read_items)
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
        # Orbax's save starts by waiting for the previous save; waiting here first lets the
        # previous step be marked while no save (nor its clean-up of old steps) runs.
        self._manager.wait_until_finished()
        self._mark_committed()
        self._manager.save(step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=IteratorSave(data_iterator),
            config=ocp.args.JsonSave(dict(config))))
        self._unmarked.add(step)
        if not self._async:
            self._mark_committed()
        return time.perf_counter() - start

    def _mark_committed(self) -> None:
        """Write the commit marker of the steps saved by this Checkpointer (call when no save
        is in flight: every one of them is complete)."""
        done = sorted(self._unmarked)
        self._unmarked.clear()
        if jax.process_index() != 0:
            return
        for step in done:
            folder = self.directory / str(step)
            try:
                files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
                         if p.is_file() and not p.name.startswith((COMMIT_MARKER, "." + COMMIT_MARKER))}
                tmp = folder / f".{COMMIT_MARKER}.tmp"
                tmp.write_text(json.dumps({"step": step, "files": files}, indent=0))
                os.replace(tmp, folder / COMMIT_MARKER)
            except FileNotFoundError:  # removed meanwhile (max_to_keep)
                continue

    def integrity_problem(self, step: int) -> str | None:
        """Why `step` fails its commit marker (missing or truncated file), or None when it
        passes or has no marker. Other filesystem errors propagate."""
        folder = self.directory / str(step)
        marker = folder / COMMIT_MARKER
        if not marker.is_file():
            return None
        try:
            files = json.loads(marker.read_text())["files"]
        except (ValueError, KeyError, TypeError) as exc:
            return f"commit marker {COMMIT_MARKER} unreadable ({type(exc).__name__})"
        for rel, size in files.items():
            try:
                actual = (folder / rel).stat().st_size
            except FileNotFoundError:
                return f"file {rel} is missing"
            if actual != size:
                return f"file {rel} has {actual} bytes, {size} when saved (truncated or overwritten)"
        return None

    def check_fits(self, step: int, target: Any) -> None:
        """Raise ConfigError when step's saved state has other leaves or shapes than target.

        Unreadable metadata raises whatever Orbax raises (classified by is_corruption).
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
        checkpoint written by 2 processes restored by 1 for evaluation or export).

        Corrupt steps newer than the restored one are quarantined; when every step is
        corrupt, UnreadableCheckpoints is raised and nothing is moved. Any other error
        propagates (see the module docstring)."""
        unreadable: list[tuple[int, str]] = []
        for step in reversed(self.all_steps()):
            def read(step=step):
                problem = self.integrity_problem(step)
                if problem is not None:
                    raise CorruptStep(problem)
                self._metadata_readable(step)
                self.check_fits(step, target)
                return self._read_items(step, target, data_iterator)

            restored, problem = self._attempt(step, read)
            if problem is not None:
                log.warning("checkpoint step %d in %s is corrupt: %s", step, self.directory, problem)
                unreadable.append((step, problem))
                continue
            for bad, why in unreadable:
                self.quarantine(bad, why)
            return restored, step
        if unreadable:
            raise UnreadableCheckpoints(self.directory, unreadable)
        return None

    def _read_items(self, step: int, target: Any, data_iterator: Any | None) -> Any:
        """The state (and the iterator's position) of a step, read through the item handlers
        rather than CheckpointManager.restore: its closing barrier would pair with
        _attempt's agreement in a process whose read failed, so the processes' collectives
        would no longer match (a hang or a mismatch error); the agreement is the barrier."""
        folder = epath.Path(self.directory / str(step))
        state = self._state_handler.restore(folder / "state", args=ocp.args.StandardRestore(target))
        if data_iterator is not None:
            IteratorStateHandler().restore(folder / "data", IteratorRestore(data_iterator))
        return state

    def _attempt(self, step: int, read) -> tuple[Any, str | None]:
        """(read(), None), or (None, reason) when the step is corrupt. Other errors are raised.
        With several processes the outcome is agreed, so all take the same branch."""
        value, outcome, error, reason = None, _OK, None, None
        try:
            value = read()
        except ConfigError as exc:
            outcome, error = _ERROR, exc
        except Exception as exc:  # noqa: BLE001 - classified: corruption is skipped, the rest raised
            outcome = _CORRUPT if is_corruption(exc) else _ERROR
            error, reason = exc, _describe_error(exc)
        if jax.process_count() > 1:
            outcomes = [int(x) for x in np.asarray(multihost_utils.process_allgather(np.int32(outcome)))]
            if _ERROR in outcomes and outcome != _ERROR:
                failed = [i for i, o in enumerate(outcomes) if o == _ERROR]
                raise TrainingError(f"{self.directory / str(step)}: reading the checkpoint failed in "
                                    f"process(es) {failed} (see their error); nothing was moved")
            if _CORRUPT in outcomes and outcome == _OK:
                failed = [i for i, o in enumerate(outcomes) if o == _CORRUPT]
                outcome, reason = _CORRUPT, f"corrupt as read by process(es) {failed}"
        if outcome == _ERROR:
            raise error
        return (value, None) if outcome == _OK else (None, reason)

    def _metadata_readable(self, step: int) -> None:
        try:
            metadata = self._manager.item_metadata(step)["state"]
        except KeyError as exc:  # Orbax: the item's folder is absent
            raise CorruptStep(f"no state item ({exc})") from exc
        if metadata is None:
            raise CorruptStep("no state metadata")

    def quarantine(self, step: int, reason: str) -> Path:
        """Move a corrupt step to <run>/corrupt_checkpoints/<step> (a free name: never overwritten)."""
        return self._move_aside(step, self.directory.parent / "corrupt_checkpoints", reason)

    def set_aside_all(self, reason: str) -> Path:
        """Move every step to <run>/replaced_checkpoints/<UTC time>/ (a start over, --restart)."""
        folder = self.directory.parent / "replaced_checkpoints" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        for step in self.all_steps():
            self._move_aside(step, folder, reason)
        return folder

    def _move_aside(self, step: int, folder: Path, reason: str) -> Path:
        dest = folder / str(step)
        n = 0
        while dest.exists():
            n += 1
            dest = folder / f"{step}.{n}"
        log.warning("checkpoint step %d in %s: %s; moved to %s", step, self.directory, reason, dest)
        if jax.process_index() == 0:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.directory / str(step)), str(dest))
        _sync(f"flashtalker_move_aside_{step}")
        self._manager.reload()
        return dest

    def saved_config(self, step: int) -> dict:
        return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config

    def reached_preemption(self, step: int) -> bool:
        """The multi-process preemption sync point (False when not distributed)."""
        return self._manager.reached_preemption(step)

    def wait(self) -> None:
        self._manager.wait_until_finished()
        self._mark_committed()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._mark_committed()
        self._manager.close()
        self._state_handler.close()


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
