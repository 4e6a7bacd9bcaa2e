"""The training loop: build the sharded state, restore or initialise, step, log, save.

`fit(task, config, run_dir)` is shared by every task. Per step it fetches this process's
batch, assembles the global batch, runs the jitted step, and (without waiting on the
device) checks the previous step's non-finite count. Metrics are fetched only on logging
and checkpoint steps, so the host stays ahead of the device.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
from flax import nnx

from flashtalker_jax.config import save_config
from flashtalker_jax.errors import ConfigError, TrainingError
from flashtalker_jax.train import distributed
from flashtalker_jax.train.checkpoint import Checkpointer, UnreadableCheckpoints, restore_subtree
from flashtalker_jax.train.mesh import batch_sharding, make_mesh, state_shardings, with_shardings
from flashtalker_jax.train.metrics import MetricsLogger
from flashtalker_jax.train.optim import make_optimizer
from flashtalker_jax.train.runlock import RunLock
from flashtalker_jax.train.state import TrainState, abstract_state, init_state, key_path_str
from flashtalker_jax.train.step import jit_train_step, make_train_step
from flashtalker_jax.train.tasks import Task
from flashtalker_jax.utils.progress import progress

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: the job should be restarted with --resume

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FitResult:
    state: TrainState
    graphdef: nnx.GraphDef
    step: int
    status: str                       # "completed" or "preempted"
    save_block_seconds: list[float]   # time the loop waited in each checkpoint save call


class _StopRequest:
    """SIGTERM handling. One process: a handler sets a flag. Several processes: JAX's
    preemption service sees the signal and Orbax's sync point makes every process stop
    at the same step (a local flag could stop one process alone and hang the others)."""

    def __init__(self, checkpointer: Checkpointer):
        self._ckpt = checkpointer
        self._multi = jax.process_count() > 1
        self._flag = False
        self._previous = None

    def __enter__(self):
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self._flag = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def requested(self, step: int) -> bool:
        return self._ckpt.reached_preemption(step) if self._multi else self._flag


def fit(task: Task, config: ml_collections.ConfigDict, run_dir: str | Path, *, resume: bool = False,
        restart: bool = False, mesh: jax.sharding.Mesh | None = None,
        after_step: Callable[[int, TrainState], None] | None = None) -> FitResult:
    """Train `task` for config.train.steps steps, saving into run_dir/checkpoints.

    resume: continue from the newest readable checkpoint (fresh start when there is none;
        UnreadableCheckpoints when there are checkpoints but none can be read).
    restart: start over from step 0 where the run would otherwise be refused (checkpoints
        without resume, or none readable with resume); the old steps are moved aside
        (replaced_checkpoints/<time>/, corrupt_checkpoints/), never deleted.
    after_step(step, state): called after every step (hooks, fault injection in tests).

    The run folder is locked for the call (train/runlock.py): a second fit on the same
    folder meanwhile raises RunFolderInUse. The resolved config is saved as
    run_dir/config.json once the lock is held, so a refused run changes nothing.
    """
    run_dir = Path(run_dir)
    train = config.train
    with RunLock(run_dir):
        if distributed.is_main_process():
            save_config(config, run_dir)
        mesh = mesh or make_mesh(config.mesh.data, config.mesh.model)
        tx, schedule = make_optimizer(config.optim, train.steps)
        graphdef, shapes = abstract_state(task.make_model, tx)
        shardings = state_shardings(mesh, shapes)

        def make_data():
            return task.make_data(jax.process_index(), jax.process_count())

        data = make_data()
        ckpt = Checkpointer(run_dir / "checkpoints", keep=train.keep_checkpoints,
                            async_save=train.async_checkpoint)
        logger = MetricsLogger(run_dir, enabled=distributed.is_main_process())
        try:
            state, data = _initial_state(task, config, tx, shapes, shardings, ckpt, data, make_data, resume,
                                         restart)
            step_fn = jit_train_step(make_train_step(graphdef, task.loss_fn, tx, schedule), mesh, shardings,
                                     batch_sharding(mesh))
            with _StopRequest(ckpt) as stop:
                return _loop(state, graphdef, step_fn, data, mesh, config, ckpt, logger, stop, after_step)
        finally:
            ckpt.close()
            logger.close()


def _initial_state(task, config, tx, shapes, shardings, ckpt, data, make_data, resume, restart):
    """(state, data iterator): restored, or initialised (a fresh iterator) at step 0."""
    target = with_shardings(shapes, shardings)
    if resume:
        try:
            restored = ckpt.restore_latest(target, data)
        except UnreadableCheckpoints as exc:
            if not restart:
                raise
            log.warning("--restart: no checkpoint in %s can be read; starting over from step 0", ckpt.directory)
            for step, why in exc.unreadable:
                ckpt.quarantine(step, why)
            restored, data = None, make_data()  # a failed restore may have moved the iterator
        if restored is not None:
            return restored[0], data
    elif ckpt.latest_step() is not None:
        if not restart:
            raise ConfigError(f"{ckpt.directory} already holds checkpoints (latest step {ckpt.latest_step()}): "
                              "pass --resume to continue, --restart to start over (the old steps are kept "
                              "in replaced_checkpoints/), or choose another --out")
        moved = ckpt.set_aside_all("--restart: starting over from step 0")
        log.warning("--restart: the checkpoints of %s were moved to %s", ckpt.directory, moved)
    init = jax.jit(lambda key: init_state(task.make_model, tx, key), out_shardings=shardings)
    state = init(jax.random.key(config.train.seed))
    if config.train.init_from:
        state = _graft_pretrained(state, target, config.train)
    return state, data


def _graft_pretrained(state: TrainState, target: TrainState, train) -> TrainState:
    """Replace params under `init_into` by the leaves saved under `init_from_prefix`."""
    into = [p for p in train.init_into.split("/") if p]
    wanted = {}
    for path, sds in jax.tree_util.tree_flatten_with_path(target.params)[0]:
        names = key_path_str(path).split("/")
        if names[:len(into)] == into:
            wanted["/".join(names[len(into):])] = sds
    if not wanted:
        raise ConfigError(f"train.init_into={train.init_into!r} names no parameters of this model")
    loaded = restore_subtree(train.init_from, wanted, train.init_from_prefix)

    def pick(path, leaf):
        names = key_path_str(path).split("/")
        rel = "/".join(names[len(into):])
        return loaded[rel] if names[:len(into)] == into else leaf

    return state.replace(params=jax.tree_util.tree_map_with_path(pick, state.params))


def _overflow_error(message: str, step: int, ckpt: Checkpointer) -> TrainingError:
    """A render-buffer overflow in training (rasterize's message) as the error a user can act
    on (no traceback); rasterize's own remedy (after the ';') is for API callers."""
    return TrainingError(
        f"{message.split(';')[0]} at or shortly before step {step}: the Gaussians grew to cover more image "
        f"tiles than the compiled render's static buffer holds (often a step size too large for the scene: "
        f"optim.lr). Lower the step size or raise the buffer (--config.task.render.intersections_per_gaussian"
        f"=N; the 'tiles' backend: --config.task.render.per_tile=N), then {_restart_hint(ckpt)}")


def _restart_hint(ckpt: Checkpointer) -> str:
    latest = ckpt.latest_step()
    if latest is None:
        return f"run it again (no checkpoint was saved yet in {ckpt.directory})"
    return f"--resume. Last good checkpoint: step {latest} in {ckpt.directory}"


def _check_nonfinite(metrics: dict, step: int, limit: int, ckpt: Checkpointer) -> None:
    run = int(metrics["nonfinite_run"])
    if run >= limit:
        raise TrainingError(
            f"{run} non-finite losses in a row (steps {step - run + 1}..{step}); updates were skipped and "
            f"training stopped: find the cause (data, optim.lr), then {_restart_hint(ckpt)}")


class _Rate:
    """Steps per second since the previous update."""

    def __init__(self, step: int):
        self._step, self._time = step, time.perf_counter()

    def update(self, step: int) -> float:
        now = time.perf_counter()
        rate = (step - self._step) / max(now - self._time, 1e-9)
        self._step, self._time = step, now
        return rate


def _loop(state, graphdef, step_fn, data, mesh, config, ckpt, logger, stop, after_step) -> FitResult:
    train = config.train
    saved_config = json.loads(json.dumps(config.to_dict(), default=str))
    sharding = batch_sharding(mesh)
    step = int(jax.device_get(state.step))
    bar = progress(total=train.steps, initial=step, desc="train", unit="step",
                   disable=not distributed.is_main_process())
    blocks, previous, status, rate = [], None, "completed", _Rate(step)
    try:
        while step < train.steps:
            batch = distributed.global_batch(next(data), sharding)
            state, metrics = step_fn(state, batch)
            step += 1
            if previous is not None:  # the previous step is done or nearly: no pipeline stall
                _check_nonfinite(previous, step - 1, train.max_nonfinite, ckpt)
            previous = metrics
            saving = step % train.checkpoint_every == 0 or step == train.steps
            if saving or step % train.log_every == 0:
                _check_nonfinite(metrics, step, train.max_nonfinite, ckpt)
            if step % train.log_every == 0 or step == train.steps:
                values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                logger.log(step, {**values, "steps_per_s": rate.update(step)})
                bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
            if after_step is not None:
                after_step(step, state)
            preempted = stop.requested(step)
            if saving or preempted:
                blocks.append(ckpt.save(step, state, data, saved_config))
            bar.update(1)
            if preempted:
                status = "preempted"
                break
    except jax.errors.JaxRuntimeError as exc:
        from flashtalker_jax.render.rasterize import overflow_message   # only on this failure path

        message = overflow_message(exc)
        if message is None:
            raise
        bar.close()   # the error then starts its own line
        raise _overflow_error(message, step + 1, ckpt) from None
    bar.close()
    ckpt.wait()
    return FitResult(state=state, graphdef=graphdef, step=step, status=status, save_block_seconds=blocks)
