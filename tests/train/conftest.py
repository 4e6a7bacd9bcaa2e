"""Shared fixture: one uninterrupted 12-step toy run that other runs are compared with."""
from __future__ import annotations

import pytest

from train_worker import run, small_config


@pytest.fixture(scope="session")
def baseline(tmp_path_factory):
    """(run_dir, params {"path": np.ndarray}, FitResult) of the uninterrupted run on 1 device."""
    from flashtalker_jax.train.state import params_as_numpy

    run_dir = tmp_path_factory.mktemp("baseline")
    result = run(run_dir, small_config())
    assert result.status == "completed" and result.step == 12
    return run_dir, params_as_numpy(result.state), result
