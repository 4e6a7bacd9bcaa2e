"""Real-footage adaptation (configs/adapt_real.py): the head is drawn over the frame itself
and trained on the head masks of `flashtalker track`. On the tiny generated identity with
a stand-in head mask (the person mask above a horizontal seam), a short run lowers the
coverage error |alpha - head mask| and leaves the frame's own pixels where the head is
not; the misconfigurations fail with errors that name the fix."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from flashtalker_jax.cli.main import main
from flashtalker_jax.config import load_config
from flashtalker_jax.errors import ConfigError, InputFileError

SEAM_ROW = 0.7  # the stand-in neck seam: person pixels below this share of the height are torso
TINY = ["--config.task.resolution=64", "--config.task.placement.uv_resolution=24",
        "--config.task.placement.teeth_per_face=1", "--config.task.avatar.feature_dim=8",
        "--config.task.avatar.heads=2", "--config.task.avatar.expr_tokens=2",
        "--config.task.avatar.offset_hidden=16", "--config.task.avatar.color_hidden=8",
        "--config.task.avatar.use_audio=False", "--config.train.log_every=5",
        "--config.train.checkpoint_every=1000", "--config.train.async_checkpoint=False",
        "--config.optim.warmup_steps=5", "--config.optim.lr=1e-2"]


def with_head_masks(identity, out):
    shutil.copytree(identity, out)
    (out / "head_masks").mkdir()
    for path in sorted((out / "fg_masks").glob("*.png")):
        person = np.asarray(Image.open(path))
        head = person.copy()
        head[int(SEAM_ROW * head.shape[0]):] = 0
        Image.fromarray(head).save(out / "head_masks" / path.name)
    return out


@pytest.fixture(scope="module")
def real_like(tiny_identity, tmp_path_factory):
    return with_head_masks(tiny_identity, tmp_path_factory.mktemp("real") / "id")


def test_short_run_lowers_the_coverage_error(real_like, tmp_path):
    run = tmp_path / "run"
    assert main(["adapt", "--data", str(real_like), "--out", str(run),
                 "--config", "adapt_real.py:quick", *TINY, "--config.train.steps=40"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    alpha = [r["alpha"] for r in records]
    assert all(np.isfinite(r["loss"]) and r["skipped"] == 0 for r in records)
    assert alpha[-1] < 0.7 * alpha[0], alpha
    saved = json.loads((run / "avatar" / "config.json").read_text())
    task = saved.get("task", saved)
    assert task["mask_source"] == "head" and task["render_over_frame"] is True


def test_missing_head_masks_name_the_file_and_the_fix(tiny_identity, tmp_path):
    from flashtalker_jax.avatar.adapt import prepare

    config = load_config("adapt_real.py:quick", TINY + [f"--config.task.data={tiny_identity}"])
    with pytest.raises(InputFileError, match="head_masks.*flashtalker track"):
        prepare(config.task)


def test_render_over_frame_needs_a_black_background():
    from flashtalker_jax.avatar.adapt import make_loss_fn

    config = load_config("adapt_real.py:quick", ["--config.task.background=(1.0, 1.0, 1.0)"])
    with pytest.raises(ConfigError, match="background"):
        make_loss_fn(config.task)
