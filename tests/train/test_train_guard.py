"""Non-finite guard, a render-buffer overflow inside the compiled step, partial restore of a
pretrained subtree, data iterators, CLI (1 device)."""
from __future__ import annotations

import dataclasses
import json
import logging

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.errors import TrainingError
from flashtalker_jax.render import BufferOverflowError, rasterize
from flashtalker_jax.train.checkpoint import Checkpointer
from flashtalker_jax.train.data import ArrayBatchIterator
from flashtalker_jax.train.optim import make_optimizer
from flashtalker_jax.train.state import abstract_state, merge_model, params_as_numpy
from flashtalker_jax.train.tasks import get_task
from flashtalker_jax.train.trainer import fit
from train_worker import SMALL_OVERRIDES, run, small_config


class NaNFrom:
    """Wraps an iterator: batches number `steps` (1-based) get NaN inputs."""

    def __init__(self, inner, steps):
        self.inner, self.steps, self.count = inner, steps, 0

    def __next__(self):
        batch = next(self.inner)
        self.count += 1
        if self.count in self.steps:
            batch = {**batch, "x": np.full_like(batch["x"], np.nan)}
        return batch

    def get_state(self):
        return {"inner": self.inner.get_state(), "count": self.count}

    def set_state(self, state):
        self.inner.set_state(state["inner"])
        self.count = state["count"]


def nan_task(config, steps):
    task = get_task(config.task)
    return dataclasses.replace(task, make_data=lambda i, n: NaNFrom(task.make_data(i, n), steps))


def test_nan_batch_is_skipped_and_counted_then_persistent_nan_stops(tmp_path):
    """Batch 3 is NaN (skipped, counted), batches 6.. are NaN: stop after 3 in a row."""
    config = small_config("--config.train.max_nonfinite=3")
    seen = {}

    def keep(step, state):
        if step in (2, 3, 5):
            seen[step] = (params_as_numpy(state), int(state.nonfinite_total), int(state.nonfinite_run))

    with pytest.raises(TrainingError, match="3 non-finite losses in a row") as info:
        fit(nan_task(config, {3, *range(6, 13)}), config, tmp_path, after_step=keep)
    assert f"--resume. Last good checkpoint: step 4 in {tmp_path / 'checkpoints'}" in str(info.value)
    for name, value in seen[2][0].items():  # step 3's update was not applied
        np.testing.assert_array_equal(seen[3][0][name], value)
    assert seen[3][1:] == (1, 1) and seen[5][1:] == (1, 0)  # counted; the run reset after a finite step
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert (logged["step"], logged["nonfinite_total"], logged["skipped"]) == (4, 1.0, 0.0)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    try:
        assert ckpt.all_steps() == [4]  # nothing saved during the NaN run (step 8 would have been)
        task = get_task(config.task)
        tx, _ = make_optimizer(config.optim, config.train.steps)
        state, step = ckpt.restore_latest(abstract_state(task.make_model, tx)[1])
    finally:
        ckpt.close()
    assert step == 4 and int(state.nonfinite_total) == 1
    assert all(np.isfinite(v).all() for v in params_as_numpy(state).values())


def test_nan_from_the_first_step_says_no_checkpoint_was_saved(tmp_path):
    config = small_config("--config.train.max_nonfinite=2")
    with pytest.raises(TrainingError, match="2 non-finite losses in a row") as info:
        fit(nan_task(config, set(range(1, 13))), config, tmp_path)
    assert f"run it again (no checkpoint was saved yet in {tmp_path / 'checkpoints'})" in str(info.value)
    assert "step None" not in str(info.value)


class GrowFrom(NaNFrom):
    """Batches number `steps` (1-based) get grow=1 (else 0): the overflow task's Gaussians
    swell to cover the whole image."""

    def __next__(self):
        batch = next(self.inner)
        self.count += 1
        return {**batch, "grow": np.full((batch["x"].shape[0],), float(self.count in self.steps), np.float32)}


def overflow_task(config, steps):
    """The toy task plus a real rasterize of 32 Gaussians (32 x 32 px, 4 tiles, 64 buffer
    slots) whose loss term is zero: 32 tile intersections while they are small, 128 once the
    batch grows them, which overflows the compiled render's buffer."""
    task = get_task(config.task)
    grid = (np.stack(np.meshgrid(np.arange(8), np.arange(4)), -1).reshape(-1, 2) - [3.5, 1.5]) * 0.1
    means = jnp.asarray(np.concatenate([grid, np.full((32, 1), 2.0)], 1), jnp.float32)
    camera = dict(viewmat=jnp.eye(4), K=jnp.array([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]))

    def loss_fn(model, batch, key):
        loss, metrics = task.loss_fn(model, batch, key)
        scales = jnp.full((32, 3), 1e-3 + batch["grow"][0])
        out = rasterize(means, jnp.tile(jnp.array([1.0, 0, 0, 0]), (32, 1)), scales, jnp.full((32,), 0.9),
                        jnp.ones((32, 3)), camera["viewmat"], camera["K"], 32, 32, capacity=64)
        return loss + 0.0 * out.rgb.sum(), metrics

    return dataclasses.replace(task, loss_fn=loss_fn, make_data=lambda i, n: GrowFrom(task.make_data(i, n), steps))


def test_render_buffer_overflow_in_the_step_is_a_training_error_naming_the_fix(tmp_path):
    config = small_config()
    fit(overflow_task(config, set()), config, tmp_path / "small")   # 32 intersections: no overflow
    with pytest.raises(TrainingError) as info:
        fit(overflow_task(config, set(range(6, 13))), config, tmp_path / "grown")
    message = str(info.value)
    assert "128 tile intersections do not fit the buffer of 64 slots at or shortly before step" in message
    assert "intersections_per_gaussian" in message and "optim.lr" in message and "--resume" in message
    assert f"Last good checkpoint: step 4 in {tmp_path / 'grown' / 'checkpoints'}" in message
    assert "Traceback" not in message and "CpuCallback" not in message


def test_cli_drops_the_callback_traceback_log_of_an_overflow_only(caplog):
    """jax.debug.callback logs a failed callback's traceback before re-raising it; the CLI
    reports an overflow itself (above), so only that record is dropped."""
    from flashtalker_jax.cli.main import JAX_CALLBACK_LOGGER, REPORTED_OVERFLOW

    def failing(error):
        def callback(x):
            raise error
        return jax.jit(lambda x: (jax.debug.callback(callback, x), x + 1.0)[1])

    logger = logging.getLogger(JAX_CALLBACK_LOGGER)
    logger.addFilter(REPORTED_OVERFLOW)
    try:
        for error in (BufferOverflowError("rasterize: 9 tile intersections do not fit"), ValueError("other")):
            with pytest.raises(jax.errors.JaxRuntimeError, match=type(error).__name__):
                jax.block_until_ready(failing(error)(jnp.float32(1.0)))
    finally:
        logger.removeFilter(REPORTED_OVERFLOW)
    logged = [record.exc_info[1] for record in caplog.records if record.name == JAX_CALLBACK_LOGGER]
    assert [type(e) for e in logged] == [ValueError]


def test_pretrained_subtree_is_grafted(tmp_path, baseline):
    deeper = small_config("--config.task.hidden=(16, 16, 16)", "--config.train.steps=0",
                          f"--config.train.init_from={baseline[0] / 'checkpoints'}",
                          "--config.train.init_from_prefix=params/hidden/1", "--config.train.init_into=hidden/2")
    params = params_as_numpy(run(tmp_path, deeper).state)
    for leaf in ("kernel/value", "bias/value"):
        np.testing.assert_array_equal(params[f"hidden/2/{leaf}"], baseline[1][f"hidden/1/{leaf}"])
    assert not np.array_equal(params["hidden/1/kernel/value"], baseline[1]["hidden/1/kernel/value"])


def test_array_iterator_splits_global_batches_and_resumes():
    arrays = {"x": np.arange(40, dtype=np.float32)[:, None]}
    whole = ArrayBatchIterator(arrays, 8, seed=1)
    halves = [ArrayBatchIterator(arrays, 8, seed=1, process_index=i, process_count=2) for i in range(2)]
    for _ in range(7):  # crosses an epoch boundary (5 batches per epoch)
        np.testing.assert_array_equal(next(whole)["x"], np.concatenate([next(h)["x"] for h in halves]))
    state = whole.get_state()
    expected = [next(whole)["x"] for _ in range(3)]
    again = ArrayBatchIterator(arrays, 8, seed=1)
    again.set_state(json.loads(json.dumps(state)))
    for batch in expected:
        np.testing.assert_array_equal(next(again)["x"], batch)


def test_grain_iterator_state_round_trips_through_checkpoint(tmp_path):
    def make():
        return grain.MapDataset.range(50).shuffle(seed=3).batch(4).to_iter_dataset().__iter__()

    it = make()
    for _ in range(3):
        next(it)
    ckpt = Checkpointer(tmp_path, async_save=False)
    state = {"w": jax.numpy.ones((2,))}
    ckpt.save(3, state, it, {"note": "grain"})
    expected = [next(it) for _ in range(2)]
    fresh = make()
    restored, step = ckpt.restore_latest(jax.eval_shape(lambda: state), fresh)
    ckpt.close()
    assert step == 3 and float(restored["w"][0]) == 1.0
    for batch in expected:
        np.testing.assert_array_equal(next(fresh), batch)


def test_cli_train_writes_config_metrics_and_tensorboard(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "train_toy", "--out", str(out), *SMALL_OVERRIDES, "--config.optim.lr=0.01"]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["optim"]["lr"] == 0.01
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [4, 8, 12] and lines[-1]["lr"] > 0
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    ckpt = Checkpointer(out / "checkpoints")
    try:
        assert ckpt.saved_config(12)["optim"]["lr"] == 0.01  # the config travels with the weights
    finally:
        ckpt.close()
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0


def test_batch_not_divisible_by_data_axis_is_a_config_error():
    from flashtalker_jax.errors import ConfigError
    from flashtalker_jax.train.distributed import global_batch
    from flashtalker_jax.train.mesh import batch_sharding, make_mesh

    sharding = batch_sharding(make_mesh())
    with pytest.raises(ConfigError, match="leading"):
        global_batch({"x": np.zeros((4, 2)), "y": np.zeros((3, 2))}, sharding)


def test_merged_model_matches_a_plain_numpy_forward(baseline):
    """merge_model (graphdef + trained state) is the same function as the saved arrays say:
    x -> gelu(x W0 + b0) -> gelu(. W1 + b1) -> . Wout + bout, in float64 numpy (tolerance
    1e-5: float32 matmuls over 16-wide layers, and jax's tanh-approximate gelu is used
    on both sides)."""
    result = baseline[2]
    model = merge_model(result.graphdef, result.state)
    p = baseline[1]
    x = np.random.default_rng(0).normal(size=(5, small_config().task.input_dim))

    def gelu(v):
        return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))

    h = x
    for i in range(2):
        h = gelu(h @ p[f"hidden/{i}/kernel/value"] + p[f"hidden/{i}/bias/value"])
    expected = h @ p["out/kernel/value"] + p["out/bias/value"]
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), expected, rtol=1e-5, atol=1e-5)
