"""A tiny adaptation (64x64, a few hundred Gaussians, 80 steps) on a generated identity:
held-out PSNR rises far above the untrained template's, everything stays finite, the CLI
writes an avatar folder and report, and resuming from a mid-run checkpoint reproduces the
uninterrupted run. Resume equality is exact up to float32 summation-order noise between
two compiled programs with identical inputs: 1e-5 relative on parameters."""
import json
import shutil

import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.avatar.adapt import export_avatar, load_avatar, make_task
from flashtalker_jax.avatar.evaluate import evaluate_avatar
from flashtalker_jax.cli.main import main
from flashtalker_jax.config import load_config
from flashtalker_jax.train.state import params_as_numpy
from flashtalker_jax.train.trainer import fit

STEPS, RESUME_AT = 80, 40
OVERRIDES = ["--config.task.resolution=64", "--config.task.placement.uv_resolution=24",
             "--config.task.placement.teeth_per_face=1", "--config.task.avatar.feature_dim=8",
             "--config.task.avatar.heads=2", "--config.task.avatar.expr_tokens=2",
             "--config.task.avatar.offset_hidden=16", "--config.task.avatar.color_hidden=8",
             "--config.task.render.backend=tiles", "--config.task.render.per_tile=512",
             "--config.task.refine_start=50", "--config.task.eval_max_frames=6", f"--config.train.steps={STEPS}",
             "--config.train.log_every=20", f"--config.train.checkpoint_every={RESUME_AT}",
             "--config.train.async_checkpoint=False", "--config.optim.warmup_steps=10",
             "--config.optim.lr=1e-2", "--config.task.avatar.use_audio=False"]


@pytest.fixture(scope="module")
def adapted(tiny_identity, tmp_path_factory):
    run = tmp_path_factory.mktemp("adapt") / "run"
    code = main(["adapt", "--data", str(tiny_identity), "--out", str(run), *OVERRIDES])
    assert code == 0
    return run


@pytest.mark.slow
def test_adaptation_beats_the_untrained_template_and_stays_finite(adapted, tiny_identity, tmp_path):
    report = tmp_path / "eval.json"
    assert main(["eval-avatar", "--avatar", str(adapted), "--data", str(tiny_identity),
                 "--report", str(report)]) == 0
    trained = json.loads(report.read_text())
    assert (tmp_path / "eval.png").is_file()
    config = load_config("adapt_flashtalker", OVERRIDES + [f"--config.task.data={tiny_identity}"])
    task = make_task(config.task)
    untrained = export_avatar(task.make_model(nnx.Rngs(0)), config.task, tmp_path / "untrained")
    model, task_cfg = load_avatar(untrained)
    before = evaluate_avatar(model, task_cfg, tiny_identity)
    assert np.isfinite([trained[k] for k in ("psnr", "ssim", "l1", "mouth_psnr")]).all()
    assert trained["psnr"] > before["psnr"] + 4.0, (before["psnr"], trained["psnr"])
    assert trained["l1"] < before["l1"]
    for line in (adapted / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["skipped"] == 0 and np.isfinite(record["loss"])


@pytest.mark.slow
def test_resume_mid_run_matches_the_uninterrupted_run(adapted, tiny_identity, tmp_path):
    resumed = tmp_path / "run"
    shutil.copytree(adapted, resumed)
    shutil.rmtree(resumed / "checkpoints" / str(STEPS))  # back to the mid-run checkpoint
    config = load_config("adapt_flashtalker", OVERRIDES + [f"--config.task.data={tiny_identity}"])
    result = fit(make_task(config.task), config, resumed, resume=True)
    assert result.step == STEPS
    model, _ = load_avatar(adapted / "avatar")
    expected = {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    got = params_as_numpy(result.state)
    assert len(got) == len(expected)
    for path, value in expected.items():
        key = "/".join(str(p) for p in path) + "/value"
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
