"""`flashtalker pretrain-e2v` (GGTalker's expression-to-visual prior across identities) and
`flashtalker oneshot` (an avatar folder from one frame with that prior)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from flashtalker_jax.cli.train import add_process_options, start_processes


def register(subparsers) -> None:
    pre = subparsers.add_parser(
        "pretrain-e2v", help="pretrain the Identity-Gaussian Generator source-target across identities",
        description="Two frames of one identity: the source predicts a UV Gaussian map, the target's "
                    "FLAME params and camera render it, the target frame supervises. Writes checkpoints "
                    "and RUN/prior (read by `flashtalker oneshot`). Presets: --config pretrain_e2v.py:cpu, "
                    ":quick; hold identities out with --config.task.max_identities=N.")
    pre.add_argument("--data", required=True, help="folder of identity folders (data synth output), or a "
                                                   "`data build-tfds` output (read lazily: large sets)")
    pre.add_argument("--out", required=True, help="run folder (checkpoints, metrics, prior/)")
    pre.add_argument("--config", default="pretrain_e2v", help="config file[:preset] (default configs/pretrain_e2v.py)")
    pre.add_argument("--flame", help="FLAME model folder shared by the identities (default DATA/flame)")
    pre.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    pre.add_argument("--restart", action="store_true", help="start over from step 0 (old steps moved aside)")
    add_process_options(pre)   # the launchers in launch/ run it on a cluster: COMMAND=pretrain-e2v
    pre.set_defaults(func=run_pretrain, takes_overrides=True)

    one = subparsers.add_parser(
        "oneshot", help="an avatar folder from one frame with a pretrained e2v prior (no per-identity training)",
        description="Predict the identity's Gaussians from one frame and write an avatar folder that speak "
                    "and eval-avatar load. This slice takes the frame's FLAME shape and camera from a tracked "
                    "VHAP folder of the identity (--data).")
    one.add_argument("--prior", required=True, help="run folder of pretrain-e2v (RUN or RUN/prior)")
    one.add_argument("--image", required=True, help="frame row of --data, or the path of one of its images")
    one.add_argument("--data", required=True, help="tracked VHAP folder of the identity")
    one.add_argument("--out", required=True, help="avatar folder to write")
    one.add_argument("--flame", help="FLAME model folder (default DATA/flame, else DATA/../flame)")
    one.add_argument("--report", help="JSON report path (timings)")
    one.set_defaults(func=run_oneshot)


def run_pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config

    config = load_config(args.config, overrides)   # config errors before the heavy imports
    config.task.dataset = str(Path(args.data))
    if args.flame:
        config.task.flame = str(Path(args.flame))

    start_processes(args)
    from flashtalker_jax.e2v.prior import write_prior
    from flashtalker_jax.e2v.task import make_task
    from flashtalker_jax.train import distributed
    from flashtalker_jax.train.state import merge_model
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE, fit
    from flashtalker_jax.utils.report import print_table

    start = time.perf_counter()
    result = fit(make_task(config.task), config, args.out, resume=args.resume, restart=args.restart)
    if result.status == "preempted":
        print(f"pretrain-e2v: preempted at step {result.step}; rerun with --resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    if not distributed.is_main_process():   # the state is replicated: process 0 writes the prior
        return 0
    prior = write_prior(Path(args.out) / "prior", merge_model(result.graphdef, result.state), config.task,
                        result.step)
    print_table([{"steps": result.step, "seconds": round(time.perf_counter() - start, 1), "prior": str(prior)}])
    return 0


def run_oneshot(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.e2v.oneshot import oneshot
    from flashtalker_jax.utils.report import print_table, write_report

    report = oneshot(args.prior, args.image, args.data, args.out, flame=args.flame)
    write_report(args.report, {"command": "oneshot", "prior": args.prior, "data": args.data, **report})
    print_table([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in report.items()}])
    return 0
