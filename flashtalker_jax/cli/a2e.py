"""`flashtalker pretrain-a2e | adapt-a2e | eval-a2e`: audio-to-expression motion models."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("synth-a2e-data", help="procedural speaking identities with FLAME motion and "
                              "audio only (no rendered frames), for the motion models")
    p.add_argument("--out", required=True, help="dataset folder (identity folders + flame/)")
    p.add_argument("--identities", type=int, default=24, help="number of identities")
    p.add_argument("--first", type=int, default=0, help="index of the first identity (voices/sentences differ per index)")
    p.add_argument("--seconds", type=float, default=40.0, help="speech per identity")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default="configs/data_synth.py", help="speech/viseme/motion/split settings")
    p.set_defaults(func=run_synth)

    p = subparsers.add_parser("pretrain-a2e", help="pretrain the audio-to-expression diffusion prior "
                              "(or Audio2Param) on many identities, data parallel over all devices")
    p.add_argument("--data", required=True, help="folder of identity folders (VHAP layout with audio)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", default="configs/pretrain_a2e.py",
                   help="configs/pretrain_a2e.py (diffusion prior) or configs/audio2param.py (baseline)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.set_defaults(func=run_pretrain)

    p = subparsers.add_parser("adapt-a2e", help="fine-tune a pretrained motion model on one identity "
                              "(audio encoder frozen, early stopping on held-out sentences)")
    p.add_argument("--prior", required=True, help="run folder of pretrain-a2e")
    p.add_argument("--data", required=True, help="the identity's folder (VHAP layout with audio)")
    p.add_argument("--out", required=True, help="run folder for the adapted model")
    p.add_argument("--config", default="configs/adapt_a2e.py")
    p.set_defaults(func=run_adapt)

    p = subparsers.add_parser("eval-a2e", help="held-out lip metrics (LVE, MVE, mouth opening correlation "
                              "and lag, FDD) with baselines, PNG traces, real-audio check")
    p.add_argument("--model", required=True, help="run folder of pretrain-a2e or adapt-a2e")
    p.add_argument("--data", required=True, help="identity folder or folder of identity folders")
    p.add_argument("--report", required=True, help="JSON report path (PNGs go beside it)")
    p.add_argument("--baseline", help="another run (e.g. Audio2Param) evaluated in the same report")
    p.add_argument("--audio", nargs="*", default=(), help="real speech files: PNG trace of the predicted "
                   "mouth opening and its mean in silent vs speech frames")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (diffusion prior)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the model's task.sample.steps)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--split", default="test", help="split to evaluate (test = held-out sentences)")
    p.set_defaults(func=run_eval)


def _config(args, overrides):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.motion.jobs import apply_preset

    config = load_config(args.config, overrides)
    apply_preset(config, overrides)
    return config


def run_pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.motion.jobs import pretrain

    summary = pretrain(_config(args, overrides), args.data, args.out, resume=args.resume)
    print(f"pretrain-a2e: {summary['status']} after {summary['steps']} steps on {summary['identities']} "
          f"identities in {summary['train_seconds']:.0f} s; model in {args.out}", file=sys.stderr)
    return 0


def run_adapt(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.motion.jobs import adapt

    summary = adapt(_config(args, overrides), args.prior, args.data, args.out)
    print(f"adapt-a2e: {summary['status']}, best held-out {summary['criterion']} {summary['best_score']:.4g} at step "
          f"{summary['best_step']} ({summary['train_seconds']:.0f} s); model in {args.out}", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.motion.jobs import evaluate
    from flashtalker_jax.utils.report import print_table, write_report

    report = evaluate(args.model, args.data, args.report, args.baseline, tuple(args.audio), args.seed,
                      args.steps, args.guidance, args.split)
    write_report(args.report, report)
    columns = ["method", "lve_max_l2_mm", "mve_mm", "opening_error_mm", "opening_pearson",
               "opening_peak_lag", "fdd_mm2"]
    print_table([{"method": k, **v} for k, v in report["summary"].items()], columns)
    for item in report["real_audio"]:
        print(f"{item['file']}: opening speech {item['opening_speech_mean_mm']:.2f} mm, silence "
              f"{item['opening_silence_mean_mm']} mm -> {item['png']}", file=sys.stderr)
    return 0


def run_synth(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from flashtalker_jax.config import load_config
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame
    from flashtalker_jax.motion.synth_motion import write_motion_identity
    from flashtalker_jax.utils.progress import progress

    cfg = load_config(args.config, overrides)
    out = Path(args.out)
    flame_dir = out / "flame"
    if not (flame_dir / "generic_model.pkl").is_file():
        write_procedural_flame(out, seed=args.seed)
    model = load_flame_model(flame_dir)
    for index in progress(range(args.first, args.first + args.identities), desc="identities", unit="id"):
        write_motion_identity(out / f"id{index:03d}", model, index, args.seed, args.seconds, cfg)
    print(f"synth-a2e-data: {args.identities} identities in {out}", file=sys.stderr)
    return 0
