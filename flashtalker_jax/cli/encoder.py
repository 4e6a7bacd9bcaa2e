"""`flashtalker pretrain-motion-encoder`, `eval-motion-encoder` and `reenact`
(GenFaceTalk's motion encoder: FLAME from pixels in one pass)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashtalker_jax.cli.options import positive_int


def register(subparsers) -> None:
    pre = subparsers.add_parser(
        "pretrain-motion-encoder", help="train the motion encoder (FLAME codes + camera from a crop)",
        description="GenFaceTalk's motion encoder trained against tracked real clips (`flashtalker track` "
                    "folders) and procedural identities (`flashtalker data synth`): soft FLAME-code, "
                    "transform and vertex losses. Writes checkpoints and RUN/encoder. Presets: "
                    "--config motion_encoder.py:cpu, :temporal, :quick.")
    pre.add_argument("--data", required=True, help="VHAP folders (identities or folders of them), comma-separated")
    pre.add_argument("--out", required=True, help="run folder (checkpoints, metrics, encoder/)")
    pre.add_argument("--config", default="motion_encoder", help="config file[:preset] (default configs/motion_encoder.py)")
    pre.add_argument("--flame", help="FLAME model the identities use (default: the first identity's)")
    pre.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    pre.add_argument("--restart", action="store_true", help="start over from step 0 (old steps moved aside)")
    pre.set_defaults(func=run_pretrain, takes_overrides=True)

    ev = subparsers.add_parser(
        "eval-motion-encoder", help="the encoder against tracking / the truth on held-out frames",
        description="Per clip: landmark error (px, % eye distance) of the encoder's FLAME against the "
                    "reference's, expression and jaw error, jitter (landmark acceleration, stability) of "
                    "the encoder with and without its temporal head and of the reference, frames/s.")
    ev.add_argument("--encoder", required=True, help="run folder of pretrain-motion-encoder (RUN or RUN/encoder)")
    ev.add_argument("--data", required=True, help="VHAP folders to evaluate (comma-separated)")
    ev.add_argument("--splits", default="test,val", help="frames evaluated: the first non-empty split "
                                                        "(default test,val; 'all' = every frame)")
    ev.add_argument("--report", help="JSON report path")
    ev.add_argument("--plot", help="PNG: per-frame jaw / expression curves of encoder vs reference")
    ev.add_argument("--render-prior", help="e2v prior RUN: also the PSNR of each clip's one-shot render (its "
                                           "Gaussians from the prior) posed by the encoder and by the reference "
                                           "(psnr_render, psnr_render_reference)")
    ev.add_argument("--render-size", type=positive_int, default=64, help="render size for --render-prior (px)")
    ev.set_defaults(func=run_eval)

    re = subparsers.add_parser(
        "reenact", help="drive an avatar with another person's video (no tracking at inference)",
        description="The driving video is cropped (MediaPipe face box, as `track` imports), the encoder reads "
                    "expression, jaw, eyes, neck and the head-to-camera code from each crop, and the avatar "
                    "renders them from its own camera. The driving clip's audio is muxed when it has one.")
    re.add_argument("--avatar", required=True, help="avatar folder (RUN/avatar or RUN)")
    re.add_argument("--encoder", required=True, help="run folder of pretrain-motion-encoder (RUN or RUN/encoder)")
    re.add_argument("--driving", required=True, help="driving video (mp4) or a folder made by `data import-video`")
    re.add_argument("--out", required=True, help="output mp4")
    re.add_argument("--work", help="folder for the driving crops (default: OUT without .mp4 + _driving)")
    re.add_argument("--batch", type=positive_int, default=8, help="frames rendered per step")
    re.add_argument("--no-temporal", action="store_true", help="skip the encoder's temporal head")
    re.add_argument("--absolute", action="store_true",
                    help="copy expression and jaw as read (default: relative to the driving clip's median, "
                         "added to the avatar's own rest face)")
    re.add_argument("--still", help="PNG: driving crops above the reenacted frames, 6 spread over the clip")
    re.add_argument("--report", help="JSON report path")
    re.set_defaults(func=run_reenact)


def run_pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config

    config = load_config(args.config, overrides)   # config errors before the heavy imports
    config.task.dataset = str(args.data)
    if args.flame:
        config.task.flame = str(Path(args.flame))

    from flashtalker_jax.encoder.job import pretrain
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE
    from flashtalker_jax.utils.report import print_table

    summary = pretrain(config, args.out, resume=args.resume, restart=args.restart)
    if summary["status"] == "preempted":
        print(f"pretrain-motion-encoder: preempted at step {summary['steps']}; rerun with --resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    print_table([summary])
    return 0


def run_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.encoder.evaluate import evaluate, table_rows
    from flashtalker_jax.utils.report import print_table, write_report

    splits = None if args.splits == "all" else tuple(s for s in args.splits.split(",") if s)
    report = evaluate(args.encoder, args.data, splits, plot=args.plot, render_prior=args.render_prior,
                      render_size=args.render_size)
    write_report(args.report, {"command": "eval-motion-encoder", "encoder": args.encoder, **report})
    print_table(table_rows(report))
    return 0


def run_reenact(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.encoder.reenact import reenact
    from flashtalker_jax.utils.report import print_table, write_report

    report = reenact(args.avatar, args.encoder, args.driving, args.out, work=args.work, batch=args.batch,
                     temporal=not args.no_temporal,
                     relative=not args.absolute, still=args.still)
    write_report(args.report, {"command": "reenact", **report})
    print_table([{k: v for k, v in report.items() if not isinstance(v, (dict, list))}])
    return 0
