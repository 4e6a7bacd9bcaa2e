"""The e2v prior's pretraining on 1 and 8 simulated devices gives the same parameters:
launch/bench_devices.py (the recipe's measuring script) run as CI runs it.

Each device count is its own process (XLA_FLAGS is read when JAX starts). Different
device counts may reduce the batch's gradients in a different order, so agreement is
required to float32 reduction rounding. Plain SGD makes that measurable: its update is
linear in the gradient, so rounding differences stay ~1e-7 of how far the steps move the
parameters, and the test allows 1e-4 of that movement, while a dropped or doubled shard
changes the gradient, and so the movement, by ~1/8. (Adam would hide a doubled gradient
and magnify rounding in near-zero gradients: 2 % of the movement after 3 steps here.)
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "launch" / "bench_devices.py"


@pytest.mark.slow
@pytest.mark.multiprocess
def test_one_and_eight_devices_agree(tiny_dataset, tmp_path):
    report = tmp_path / "devices.json"
    cmd = [sys.executable, str(SCRIPT), "--config", "pretrain_e2v.py:quick", "--devices", "1,8", "--steps", "3",
           "--warmup", "1", "--out", str(tmp_path / "runs"), "--report", str(report), "--",
           f"--config.task.dataset={tiny_dataset}", "--config.task.batch_size=8", "--config.optim.name=sgd",
           "--config.optim.lr=0.05", "--config.optim.schedule=constant"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, eight = json.loads(report.read_text())["rows"]
    assert (one["devices"], eight["devices"]) == (1, 8)
    assert eight["max_param_change_after_step_1"] > 0
    assert eight["max_param_diff_vs_first"] <= 1e-4 * eight["max_param_change_after_step_1"], eight
