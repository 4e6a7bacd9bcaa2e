"""Pose Refiner: shapes, zero-init residual, losses go down, determinism, no seams."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from pose_helpers import max_step, memory_database

from flashtalker_jax.config import load_config
from flashtalker_jax.motion.pose.refiner import (PoseRefiner, RefinerDims, RefinerGAN, make_task_from_db,
                                                 refine_track, refiner_loss, training_arrays)
from flashtalker_jax.train.trainer import fit


@pytest.fixture(scope="module")
def setup():
    db = memory_database(200, seed=0, window=10, stride=5)
    cfg = load_config("pose_talk2me.py:quick")
    cfg.task.update(window=10, overlap=4, exclude_margin=10, train_stride=2)
    return db, cfg


def test_shapes_and_zero_init_residual(setup):
    db, cfg = setup
    arrays = training_arrays(db, cfg.task)
    assert arrays["target"].shape[1:] == (10, 6) and arrays["audio"].shape[1:] == (10, 2 * 81)
    model = RefinerGAN(RefinerDims.of(cfg.task, db), cfg.task.model.disc_width, nnx.Rngs(0))
    batch = {k: v[:3] for k, v in arrays.items()}
    out = model.refiner(batch["retrieved"], batch["expr"], batch["audio"])
    assert out.shape == (3, 10, 6)
    np.testing.assert_allclose(out, batch["retrieved"], atol=1e-6)   # untrained = retrieval
    g, local = model.disc(out)
    assert g.shape == (3,) and local.ndim == 2 and local.shape[0] == 3
    loss, metrics = refiner_loss(model, batch, cfg.task.loss)
    assert np.isfinite(loss) and {"rec_l1", "vel_l1", "g_adv", "d_loss"} <= set(metrics)


def test_losses_go_down_with_the_trainer(setup, tmp_path):
    db, cfg = setup
    cfg.train.update(steps=20, log_every=5)
    result = fit(make_task_from_db(cfg.task, db), cfg, tmp_path / "run")
    import json

    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "rec_l1" in r]
    assert result.status == "completed"
    assert rows[-1]["rec_l1"] < rows[0]["rec_l1"]
    assert rows[-1]["rec_l1"] < rows[-1]["retrieval_l1"]   # the refiner improves on its input
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_refine_track_deterministic_and_seamless(setup):
    db, cfg = setup
    dims = RefinerDims.of(cfg.task, db)
    refiner = PoseRefiner(dims, nnx.Rngs(1))
    # a refiner with a non-zero residual head, so its windows differ where they overlap
    refiner.out.kernel[...] = 0.3 * jax.random.normal(jax.random.key(2), refiner.out.kernel.shape)
    rng = np.random.default_rng(0)
    t = 97
    pose = np.cumsum(rng.normal(0, 0.05, (t, 6)), 0).astype(np.float32)
    expr = rng.normal(size=(t, dims.expr_dim)).astype(np.float32)
    audio = rng.normal(size=(t, dims.audio_dim)).astype(np.float32)
    a = refine_track(refiner, pose, expr, audio, overlap=4)
    b = refine_track(refiner, pose, expr, audio, overlap=4)
    assert a.shape == (t, 6)
    np.testing.assert_array_equal(a, b)
    hard = refine_track(refiner, pose, expr, audio, overlap=0)
    assert max_step(a, np.ones(6)) < max_step(hard, np.ones(6))   # the taper removes the joins' jumps
