"""`flashtalker adapt` (train an identity's Gaussian avatar), `flashtalker eval-avatar`, and the
`bench avatar` subcommand (registered by cli/bench.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashtalker_jax.cli.options import count_list, name_list, positive_int


def register(subparsers) -> None:
    adapt = subparsers.add_parser(
        "adapt", help="adapt a Gaussian avatar to one identity's frames (checkpointed, resumable)",
        description="Train template + offsets on the training frames of a VHAP folder and write "
                    "a self-contained avatar folder RUN/avatar. Presets: --config adapt_flashtalker.py:cpu; "
                    "overrides: --config.task.resolution=256 etc.")
    adapt.add_argument("--data", required=True, help="identity folder (VHAP format)")
    adapt.add_argument("--out", required=True, help="run folder (checkpoints, metrics, avatar/)")
    adapt.add_argument("--config", default="adapt_flashtalker",
                       help="config file (configs/adapt_*.py), optionally with a preset: adapt_flashtalker.py:cpu")
    adapt.add_argument("--flame", help="FLAME model folder (default: DATA/flame)")
    adapt.add_argument("--prior", help="run folder of `pretrain-e2v` (RUN or RUN/prior): start the Gaussians "
                       "from the prior's prediction for one training frame (--config.task.prior.reference_frame"
                       "=N, default the first); --resume reuses the prior the run started with")
    adapt.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    adapt.add_argument("--restart", action="store_true", help="start over from step 0 when --out holds "
                       "checkpoints that cannot be read (with --resume) or any checkpoints (without); old steps "
                       "are moved aside, not deleted")
    adapt.set_defaults(func=run_adapt, takes_overrides=True)

    body = subparsers.add_parser(
        "adapt-body", help="a real-footage avatar in the person's own frame: train its body inpainter and "
                           "store its body loop (torso/background frames) in the avatar folder",
        description="For an avatar of `flashtalker adapt --config adapt_real.py`: render its training frames, "
                    "train GGTalker's body inpainter on them (run folder OUT, resumable), copy it into "
                    "AVATAR/inpainter and write AVATAR/body (the frames speak replays); the report has the "
                    "held-out seam error. Presets: --config adapt_body.py:cpu; overrides --config.train.steps=N.")
    body.add_argument("--avatar", required=True, help="avatar folder (RUN or RUN/avatar) trained on real footage")
    body.add_argument("--data", required=True, help="the tracked VHAP folder it was trained on")
    body.add_argument("--out", required=True, help="run folder of the inpainter training (checkpoints, metrics)")
    body.add_argument("--config", default="adapt_body", help="config file[:preset] (default configs/adapt_body.py)")
    body.add_argument("--source-video", help="the tracked video, for sources larger than the crop (default: "
                      "transforms.json's source_video)")
    body.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    body.add_argument("--report", help="JSON report path")
    body.set_defaults(func=run_adapt_body, takes_overrides=True)

    evaluate = subparsers.add_parser(
        "eval-avatar", help="PSNR/SSIM/L1/mouth PSNR of an avatar on held-out frames, with a PNG",
        description="Render the held-out frames of DATA from their tracked FLAME parameters and "
                    "compare with the ground truth. Overrides apply to the avatar's saved task "
                    "config, e.g. --config.task.eval_max_frames=16.")
    evaluate.add_argument("--avatar", required=True, help="avatar folder (RUN or RUN/avatar)")
    evaluate.add_argument("--data", required=True, help="identity folder (VHAP format)")
    evaluate.add_argument("--report", help="JSON report path")
    evaluate.add_argument("--png", help="side-by-side PNG (default: next to the report, else RUN)")
    evaluate.set_defaults(func=run_eval, takes_overrides=True)


def run_adapt(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config

    config = load_config(args.config, overrides)   # config errors before the heavy imports
    config.task.data = str(Path(args.data))
    if args.flame:
        config.task.flame = str(Path(args.flame))
    if args.prior:
        config.task.prior.path = str(Path(args.prior))

    from flashtalker_jax.avatar.jobs import adapt
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE
    from flashtalker_jax.utils.report import print_table

    summary = adapt(config, args.out, resume=args.resume, restart=args.restart)
    if summary["status"] == "preempted":
        print(f"adapt: preempted at step {summary['steps']}; rerun with --resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    print_table([{"steps": summary["steps"], "seconds": summary["seconds"], "avatar": str(summary["avatar"])}])
    return 0


def run_adapt_body(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config

    config = load_config(args.config, overrides)

    from flashtalker_jax.composite.job import adapt_body
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE
    from flashtalker_jax.utils.report import print_table, write_report

    report = adapt_body(args.avatar, args.data, config, args.out, source_video=args.source_video,
                        resume=args.resume)
    write_report(args.report, report)
    if report["status"] == "preempted":
        print("adapt-body: preempted; rerun with --resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    print_table([{"model": name, "heldout_seam_l1": round(v["seam_l1"], 5), "heldout_l1": round(v["l1"], 5)}
                 for name, v in report["heldout_seam"].items()])
    print(f"adapt-body: {report['avatar']}/inpainter and /body written "
          f"({report['body_loop']['frames']} loop frames)", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.avatar.evaluate import evaluate_avatar
    from flashtalker_jax.avatar.export import resolve_avatar_dir
    from flashtalker_jax.avatar.renderer import load_renderer
    from flashtalker_jax.utils.report import print_table, write_report

    avatar_dir = resolve_avatar_dir(args.avatar)
    png = args.png or (Path(args.report).with_suffix(".png") if args.report else avatar_dir / "eval.png")
    # overrides, e.g. --config.task.eval_max_frames=16, apply to the avatar's saved config
    renderer, task_cfg = load_renderer(avatar_dir, tuple(overrides))
    result = evaluate_avatar(renderer.model, task_cfg, args.data, png_path=png)
    write_report(args.report, {"avatar": str(avatar_dir), "data": str(args.data), "png": str(png),
                               **result})
    print_table([{k: result[k] for k in ("frames", "psnr", "ssim", "l1", "mouth_psnr", "eye_psnr", "blink_corr")}])
    print(f"eval-avatar: side-by-side (ground truth | render | error) in {png}", file=sys.stderr)
    return 0


BENCH_HELP = "Render FPS of avatars: UV placement vs per-face placement (Gaussian counts, batch sizes)."


def bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="identity folder (VHAP format) the fresh avatars are built from; "
                   "without it only --avatar is timed (on its stored frames and camera)")
    p.add_argument("--avatar", default=None, help="also time this trained avatar (RUN or RUN/avatar)")
    p.add_argument("--configs", type=name_list, default=None,
                   help="adapt configs (file[:preset]) whose fresh avatars to time (default with --data: "
                        "adapt_flashtalker,adapt_gaussianavatars, UV and per-face placement); --config.* "
                        "overrides apply to each")
    p.add_argument("--sizes", type=count_list, default="128,256", help="square image sizes, comma separated")
    p.add_argument("--batch", type=count_list, default="1,4", help="frames rendered per call, comma separated")
    p.add_argument("--runs", type=positive_int, default=5, help="timed runs per row (median)")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.set_defaults(takes_overrides=True)


def run_bench(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.avatar.bench import DEFAULT_CONFIGS, bench_avatar
    from flashtalker_jax.cli.bench import rows_exit_code
    from flashtalker_jax.utils.progress import progress
    from flashtalker_jax.utils.report import print_table, write_report

    avatar = Path(args.avatar) if args.avatar else None
    if avatar is not None and (avatar / "avatar").is_dir():
        avatar = avatar / "avatar"
    configs = args.configs if args.configs is not None else (DEFAULT_CONFIGS if args.data else ())
    rows = bench_avatar(args.data, args.sizes, args.batch, configs=configs, avatar_dir=avatar,
                        overrides=overrides, runs=args.runs,
                        progress=lambda it: progress(it, desc="bench avatar", unit="row"))
    print_table(rows, ["avatar", "placement", "size", "batch", "gaussians", "backend",
                       "ms_per_batch", "fps"])
    write_report(args.report, {"command": "bench avatar", "data": args.data, "runs": args.runs,
                               "rows": rows})
    return rows_exit_code(rows, "bench avatar")
