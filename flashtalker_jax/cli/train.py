"""`flashtalker train`: run the training task named in a config (single or multi-process)."""
from __future__ import annotations

import argparse
import sys

from flashtalker_jax.cli.options import non_negative_int, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the task named in a config (sharded, checkpointed, resumable, multi-host)",
        description="Train config.task.name. Overrides: --config.optim.lr=1e-4 etc. Exit code 143 "
                    "means a preemption signal stopped the run after a checkpoint: rerun with --resume.")
    parser.add_argument("--config", required=True, help="config file (configs/x.py, a path, or file.py:preset)")
    parser.add_argument("--out", default="runs/train", help="run folder (checkpoints, metrics, config)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out (fresh start if none)")
    parser.add_argument("--restart", action="store_true",
                        help="start over from step 0 when --out holds checkpoints that cannot be read (with "
                             "--resume) or any checkpoints (without); old steps are moved aside, not deleted")
    add_process_options(parser)
    parser.set_defaults(func=run_train, takes_overrides=True)


def add_process_options(parser) -> None:
    """The multi-process flags every launcher in launch/ passes (one set for every
    trainer command: `train`, `pretrain-e2v`)."""
    parser.add_argument("--coordinator", help="host:port of process 0 (explicit multi-process start)")
    parser.add_argument("--num-processes", type=positive_int, help="number of processes (with --coordinator)")
    parser.add_argument("--process-id", type=non_negative_int, help="this process's index (with --coordinator)")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() with cluster auto-detection "
                             "(automatic under SLURM with several tasks and on TPU pods)")


def start_processes(args: argparse.Namespace) -> None:
    """jax.distributed.initialize as the process options ask (nothing for one process)."""
    from flashtalker_jax.train import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)


def run_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.train import distributed

    config = load_config(args.config, overrides)
    start_processes(args)

    import jax

    from flashtalker_jax.train.tasks import get_task
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE, fit

    task = get_task(config.task)
    result = fit(task, config, args.out, resume=args.resume, restart=args.restart)
    if distributed.is_main_process():
        print(f"train: {result.status} at step {result.step}; run folder {args.out} "
              f"({jax.process_count()} process(es), {jax.device_count()} device(s))", file=sys.stderr)
    return PREEMPTED_EXIT_CODE if result.status == "preempted" else 0
