"""Pretraining killed mid-run resumes (checkpoint + pair-iterator state) to exactly the
parameters of an uninterrupted run."""
import numpy as np
import pytest

from conftest import quick_config
from flashtalker_jax.e2v.task import make_task
from flashtalker_jax.train.state import params_as_numpy
from flashtalker_jax.train.trainer import fit

STEPS = 4


def test_resume_after_kill_matches_uninterrupted(tiny_dataset, tmp_path):
    cfg = quick_config(tiny_dataset, f"train.steps={STEPS}", "train.checkpoint_every=2",
                       "train.async_checkpoint=False")
    task = make_task(cfg.task)
    full = fit(task, cfg, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_at_3(step, state):
        if step == 3:
            raise Killed   # before step 3's save: the newest checkpoint is step 2's

    with pytest.raises(Killed):
        fit(task, cfg, tmp_path / "killed", after_step=kill_at_3)
    resumed = fit(make_task(cfg.task), cfg, tmp_path / "killed", resume=True)
    assert resumed.step == STEPS
    want, got = params_as_numpy(full.state), params_as_numpy(resumed.state)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
