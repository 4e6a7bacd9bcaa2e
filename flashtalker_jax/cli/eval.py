"""`flashtalker eval`: an avatar (and motion run) on self- or cross-reenactment, every
metric of flashtalker_jax.metrics, a paper-style table, a JSON report and two PNGs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashtalker_jax.cli.options import non_negative_int, positive_int, seed

DEFAULT_LANDMARKER = Path("..") / "shared" / "data" / "models" / "face_landmarker.task"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="score an avatar (+ a2e run) on self/cross reenactment: table, report, PNGs",
        description="self: the identity's held-out frames driven by their tracked FLAME "
                    "parameters and (with --a2e) by expressions predicted from their own audio, "
                    "against the ground truth. cross: the avatar speaks --audio clips (speech "
                    "files or other identities' VHAP folders) through --a2e; no ground-truth "
                    "frames, so image metrics are reported unavailable with the reason. Overrides apply to "
                    "the avatar's saved task config, e.g. --config.task.render.per_tile=1024.")
    p.add_argument("--avatar", required=True, help="avatar folder (RUN or RUN/avatar of `flashtalker adapt`)")
    p.add_argument("--a2e", help="motion run (pretrain-a2e / adapt-a2e) for the audio-driven rows")
    p.add_argument("--data", help="the avatar identity's VHAP folder (needed by --setting self; "
                   "cross replays the pose track and camera stored in the avatar folder)")
    p.add_argument("--setting", required=True, choices=("self", "cross"))
    p.add_argument("--audio", nargs="+", default=[], metavar="WAV_OR_DIR",
                   help="cross: driving speech files or other identities' VHAP folders")
    p.add_argument("--lpips-weights", nargs=2, metavar=("BACKBONE", "LIN"),
                   help="local LPIPS weights: torchvision backbone .pth and lpips lin .pth")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--landmarker", help=f"MediaPipe face_landmarker.task (default: {DEFAULT_LANDMARKER} "
                                        "when present; MediaPipe metrics are unavailable without it)")
    p.add_argument("--max-frames", type=non_negative_int, default=0, help="evaluate at most this many frames (0: all)")
    p.add_argument("--batch", type=positive_int, default=4, help="frames rendered per batch")
    p.add_argument("--seed", type=seed, default=0, help="seed of the a2e sampler")
    p.add_argument("--sample-steps", type=positive_int, help="DDIM steps of a diffusion a2e run (default: the run's "
                   "task.sample.steps)")
    p.add_argument("--report", required=True, help="JSON report path")
    p.add_argument("--out", help="folder for grid.png and curves.png (default: beside the report)")
    p.set_defaults(func=run_eval, takes_overrides=True)


def landmarker_path(arg: str | None) -> Path | None:
    from flashtalker_jax.errors import ModelFileError

    if arg:
        if not Path(arg).is_file():
            raise ModelFileError(arg, "MediaPipe face landmarker model not found",
                                 "pass a face_landmarker.task bundle or leave --landmarker out")
        return Path(arg)
    return DEFAULT_LANDMARKER if DEFAULT_LANDMARKER.is_file() else None


def run_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.eval.run import evaluate
    from flashtalker_jax.utils.report import write_report

    out = Path(args.out) if args.out else Path(args.report).parent
    report = evaluate(args.avatar, args.data, args.setting, a2e=args.a2e, sources=args.audio,
                      lpips_weights=args.lpips_weights, lpips_net=args.lpips_net,
                      landmarker=landmarker_path(args.landmarker), max_frames=args.max_frames,
                      seed=args.seed, sample_steps=args.sample_steps, batch_size=args.batch,
                      out_dir=out, overrides=tuple(overrides))
    write_report(args.report, report)
    print(report["table"], flush=True)
    if report.get("regions"):
        from flashtalker_jax.utils.report import print_table

        print_table([{"driving": name, "region": region, **{k: round(v, 4) if isinstance(v, float) else v
                                                            for k, v in scores.items()}}
                     for name, by_region in report["regions"].items() for region, scores in by_region.items()])
        print(f"eval: pixels: {report['compositing']['pixels']} ({report['compositing']['method']})", file=sys.stderr)
    print(f"eval: report {args.report}; frames grid {report['pngs']['grid']}; "
          f"curves {report['pngs']['curves']}", file=sys.stderr)
    return 0
