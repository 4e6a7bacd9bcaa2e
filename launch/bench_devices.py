"""The same training run on 1 and N devices: time per step, rows/s, and whether the
parameters agree (data-parallel sharding must change the speed, not the result).

Each device count runs in its own process (XLA_FLAGS must be set before JAX starts; on a
CPU machine `--xla_force_host_platform_device_count=N` simulates N devices, on a GPU or
TPU host the process simply sees its devices and `--devices` must not exceed them). Every
run trains the same config from the same seed for `--steps` steps with the trainer
(`fit`: the global batch sharded over the mesh's data axis), and saves its final
parameters; the table compares each run's parameters with the first run's (max |diff|)
and, for scale, with how far training moved them (max |final - after step 1|).

    python launch/bench_devices.py --config pretrain_e2v.py:cpu --devices 1,8 --steps 20 \\
        --report devices.json -- --config.task.dataset=DS --config.task.batch_size=8

Times exclude compilation: the clock starts after `--warmup` steps (device synchronised).
Rows/s = global batch x steps/s (for the e2v prior one row is one identity's source-target
pair, so rows/s is identities/s). On simulated CPU devices the N devices share the same
cores: the table then measures the cost of sharding, not a speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="config file[:preset] of a trainer task")
    p.add_argument("--devices", default="1,8", help="comma-separated device counts, first = reference")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="steps before the clock starts (compilation)")
    p.add_argument("--out", help="folder for the runs (default: a temporary folder, deleted)")
    p.add_argument("--report", help="JSON report path")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)   # internal: run one device count
    p.add_argument("overrides", nargs="*", help="config overrides after --, e.g. --config.task.dataset=DS")
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps <= args.warmup:
        p.error(f"need 1 <= --warmup < --steps, got warmup={args.warmup} steps={args.steps}")
    return args


def config_for(args):
    from flashtalker_jax.config import load_config

    return load_config(args.config, [*args.overrides, f"--config.train.steps={args.steps}",
                                     f"--config.train.log_every={args.steps}",
                                     f"--config.train.checkpoint_every={args.steps}",
                                     "--config.train.async_checkpoint=False"])


def worker(args, run_dir: Path) -> None:
    """One device count (this process's devices): train, write params.npz and timing.json."""
    import jax

    from flashtalker_jax.train.state import params_as_numpy
    from flashtalker_jax.train.tasks import get_task
    from flashtalker_jax.train.trainer import fit

    if jax.device_count() != args.worker:
        raise SystemExit(f"expected {args.worker} devices, this process sees {jax.device_count()}")
    config = config_for(args)
    marks, initial = {}, {}

    def hook(step, state):
        if step == 1:
            initial.update(params_as_numpy(jax.device_get(state)))
        if step in (args.warmup, args.steps):
            jax.block_until_ready(state)
            marks[step] = time.perf_counter()

    start = time.perf_counter()
    result = fit(get_task(config.task), config, run_dir, after_step=hook)
    final = params_as_numpy(result.state)
    np.savez(run_dir / "params.npz", **final)
    step_s = (marks[args.steps] - marks[args.warmup]) / (args.steps - args.warmup)
    timing = {"devices": jax.device_count(), "platform": jax.devices()[0].platform,
              "global_batch": int(config.task.batch_size), "s_per_step": step_s,
              "steps_per_s": 1 / step_s, "rows_per_s": config.task.batch_size / step_s,
              "wall_s": time.perf_counter() - start,
              "max_param_change_after_step_1": max(float(np.max(np.abs(final[k] - initial[k]))) for k in final)}
    (run_dir / "timing.json").write_text(json.dumps(timing))


def run_one(args, devices: int, run_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if env.get("JAX_PLATFORMS", "cpu") == "cpu":
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, __file__, "--config", args.config, "--steps", str(args.steps), "--warmup",
           str(args.warmup), "--worker", str(devices), "--out", str(run_dir), "--", *args.overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"bench_devices: the {devices}-device run failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads((run_dir / "timing.json").read_text())


def max_difference(a: Path, b: Path) -> float:
    with np.load(a) as x, np.load(b) as y:
        if sorted(x.files) != sorted(y.files):
            raise SystemExit(f"parameter names differ between {a} and {b}")
        return max(float(np.max(np.abs(x[k] - y[k]))) for k in x.files)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        worker(args, Path(args.out))
        return 0
    from flashtalker_jax.utils.report import print_table, write_report

    counts = [int(c) for c in args.devices.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.out or scratch)
        rows = []
        for n in counts:
            run_dir = base / f"devices_{n}"
            row = run_one(args, n, run_dir)
            row["max_param_diff_vs_first"] = max_difference(base / f"devices_{counts[0]}" / "params.npz",
                                                            run_dir / "params.npz")
            rows.append(row)
    print_table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
    write_report(args.report, {"command": "launch/bench_devices.py", "config": args.config,
                               "overrides": args.overrides, "steps": args.steps, "warmup": args.warmup,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
