"""launch/gpu_check.sh (the first GPU's one command): what can be checked without a GPU.
The script parses, runs the kernel tests compiled (FLASHTALKER_KERNEL_MODE, tested in
kernels/rasterize/tests) and every bench the issue names; its summariser turns a finished
folder into summary.json + summary.md and says which parts are missing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "launch" / "gpu_check.sh"


def test_script_parses_and_runs_the_named_checks():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert "FLASHTALKER_KERNEL_MODE=compiled step kernel_tests" in text
    assert "bench raster --backends pallas,gsplat" in text
    assert "bench speak" in text and "--size 512" in text and "bench avatar" in text
    limits = [int(line.split()[2]) for line in text.splitlines()
              if line.startswith(("step ", "FLASHTALKER_KERNEL_MODE=compiled step "))
              for line in [line.replace("FLASHTALKER_KERNEL_MODE=compiled ", "")]]
    assert len(limits) == 7 and sum(limits) <= 8 * 60, limits   # fits 8 minutes even at every limit


def test_script_stops_without_a_gpu(tmp_path):
    """On this CPU machine the env step finds no GPU: exit non-zero, summary still written."""
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable,
                                                               "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == ["env"] and steps[0]["rc"] == 3
    assert json.loads((out / "env.json").read_text())["backend"] == "cpu"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kernel_tests"] == {"status": "missing"} and summary["bench"]["bench_raster"] is None


def test_summary_of_a_finished_folder(tmp_path):
    (tmp_path / "steps.jsonl").write_text('{"step": "env", "rc": 0, "seconds": 3, "limit_s": 30}\n'
                                          '{"step": "bench_raster", "rc": 1, "seconds": 9, "limit_s": 110}\n')
    (tmp_path / "kernel_tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="0">'
        '<testcase classname="k" name="a"/><testcase classname="k" name="b"><failure/></testcase>'
        '<testcase classname="k" name="c"/></testsuite></testsuites>')
    (tmp_path / "bench_raster.json").write_text(json.dumps({"rows": [
        {"backend": "pallas", "gaussians": 10000, "fwd_ms": 0.5, "fwd_bwd_ms": 1.25}]}))
    subprocess.run([sys.executable, str(REPO / "launch" / "gpu_check_summary.py"), str(tmp_path)], check=True,
                   capture_output=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kernel_tests"] == {"tests": 3, "failures": 1, "errors": 0, "skipped": 0, "failed": ["k::b"]}
    assert summary["bench"]["bench_speak"] is None
    md = (tmp_path / "summary.md").read_text()
    assert "| pallas | 10000 | 0.5 | 1.25 |" in md and "## bench_speak\n\n(missing)" in md
