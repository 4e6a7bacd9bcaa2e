"""`flashtalker synth-a2e-data | pretrain-a2e | adapt-a2e | eval-a2e | eval-mouth`:
audio-to-expression motion models; the jobs themselves are in flashtalker_jax/motion/jobs.py
(eval-mouth: pipeline/mouth_check.py)."""
from __future__ import annotations

import argparse
import sys

from flashtalker_jax.cli.options import (non_negative_float, non_negative_int, positive_float, positive_int,
                                         seed)


def register(subparsers) -> None:
    p = subparsers.add_parser("synth-a2e-data", help="procedural speaking identities with FLAME motion and "
                              "audio only (no rendered frames), for the motion models")
    p.add_argument("--out", required=True, help="dataset folder (identity folders + flame/)")
    p.add_argument("--identities", type=positive_int, default=24, help="number of identities")
    p.add_argument("--first", type=non_negative_int, default=0, help="index of the first identity (voices/sentences differ per index)")
    p.add_argument("--seconds", type=positive_float, default=40.0, help="speech per identity")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--config", default="data_synth", help="speech/viseme/motion/split settings")
    p.set_defaults(func=run_synth, takes_overrides=True)

    p = subparsers.add_parser("pretrain-a2e", help="pretrain the audio-to-expression diffusion prior "
                              "(or Audio2Param) on many identities, data parallel over all devices")
    p.add_argument("--data", required=True, help="folder of identity folders (VHAP layout with audio)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", default="pretrain_a2e",
                   help="pretrain_a2e (diffusion prior), audio2param (baseline), talk2me_eg (Talk2Me's "
                        "Expression Generator) or genfacetalk_audio (GenFaceTalk's E_audio + the motion "
                        "encoder's heads; --config.task.heads_from=RUN starts them from a trained encoder), "
                        "with an optional preset: pretrain_a2e.py:tiny, pretrain_a2e.py:cpu")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--restart", action="store_true", help="start over from step 0 when --out holds "
                   "checkpoints that cannot be read (with --resume) or any checkpoints (without); old steps "
                   "are moved aside, not deleted")
    p.set_defaults(func=run_pretrain, takes_overrides=True)

    p = subparsers.add_parser("adapt-a2e", help="fine-tune a pretrained motion model on one identity "
                              "(audio encoder frozen, early stopping on held-out sentences)")
    p.add_argument("--a2e", required=True, help="motion run of pretrain-a2e to adapt")
    p.add_argument("--data", required=True, help="the identity's folder (VHAP layout with audio)")
    p.add_argument("--out", required=True, help="run folder for the adapted model")
    p.add_argument("--config", default="adapt_a2e", help="config file, with an optional preset: "
                   "adapt_a2e.py:tiny, adapt_a2e.py:cpu")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out "
                   "(early stopping keeps the best evaluation so far)")
    p.add_argument("--restart", action="store_true", help="start over from step 0 when --out holds "
                   "checkpoints that cannot be read (with --resume) or any checkpoints (without); old steps "
                   "are moved aside, not deleted")
    p.set_defaults(func=run_adapt, takes_overrides=True)

    p = subparsers.add_parser("eval-a2e", help="held-out lip metrics (LVE, MVE, mouth opening correlation "
                              "and lag, FDD, blink statistics) with baselines, PNG traces, real-audio check")
    p.add_argument("--a2e", required=True, help="motion run of pretrain-a2e or adapt-a2e")
    p.add_argument("--data", required=True, help="identity folder or folder of identity folders")
    p.add_argument("--report", required=True, help="JSON report path (PNGs go beside it)")
    p.add_argument("--baseline", help="another run (e.g. Audio2Param) evaluated in the same report")
    p.add_argument("--audio", nargs="*", default=(), help="real speech files: PNG trace of the predicted "
                   "mouth opening and its mean in silent vs speech frames")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed (diffusion prior)")
    p.add_argument("--sample-steps", type=positive_int, help="DDIM steps (default: the model's task.sample.steps)")
    p.add_argument("--guidance", type=non_negative_float, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--split", default="test", help="split to evaluate (test = held-out sentences)")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser("eval-mouth", help="does the predicted mouth close? opening at bilabials, in "
                              "silence and at open vowels on phone-timed espeak-ng speech, and in speech vs "
                              "silence on real recordings")
    p.add_argument("--a2e", nargs="*", default=None, help="motion runs to check (default: the bundled "
                   "motion prior); NAME=RUN names a row")
    p.add_argument("--audio", nargs="*", default=(), help="real speech files (speech vs silence by RMS)")
    p.add_argument("--voices", default=",".join(("f3", "m3", "klatt2")),
                   help="espeak-ng English voice variants of the phone-timed speech (comma separated)")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed (diffusion prior)")
    p.add_argument("--report", required=True, help="JSON report path")
    p.set_defaults(func=run_mouth)


def _exit_code(status: str, command: str) -> int:
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE

    if status != "preempted":
        return 0
    print(f"{command}: preempted; rerun with --resume", file=sys.stderr)
    return PREEMPTED_EXIT_CODE


def run_pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.motion.jobs import pretrain

    summary = pretrain(load_config(args.config, overrides), args.data, args.out, resume=args.resume,
                       restart=args.restart)
    print(f"pretrain-a2e: {summary['status']} after {summary['steps']} steps on {summary['identities']} "
          f"identities in {summary['train_seconds']:.0f} s; model in {args.out}", file=sys.stderr)
    return _exit_code(summary["status"], "pretrain-a2e")


def run_adapt(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.motion.jobs import adapt

    summary = adapt(load_config(args.config, overrides), args.a2e, args.data, args.out, resume=args.resume,
                    restart=args.restart)
    print(f"adapt-a2e: {summary['status']}, best held-out {summary['criterion']} {summary['best_score']:.4g} at step "
          f"{summary['best_step']} ({summary['train_seconds']:.0f} s); model in {args.out}", file=sys.stderr)
    return _exit_code(summary["status"], "adapt-a2e")


def run_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.motion.jobs import evaluate
    from flashtalker_jax.utils.report import print_table, write_report

    report = evaluate(args.a2e, args.data, args.report, args.baseline, tuple(args.audio), args.seed,
                      args.sample_steps, args.guidance, args.split)
    write_report(args.report, report)
    columns = ["method", "lve_max_l2_mm", "mve_mm", "opening_error_mm", "opening_pearson",
               "opening_peak_lag", "fdd_mm2", "eye_opening_pearson", "blinks_per_min"]
    print_table([{"method": k, **v} for k, v in report["summary"].items()], columns)
    for item in report["real_audio"]:
        print(f"{item['file']}: opening speech {item['opening_speech_mean_mm']:.2f} mm, silence "
              f"{item['opening_silence_mean_mm']} mm -> {item['png']}", file=sys.stderr)
    return 0


def run_synth(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.motion.jobs import synthesize

    out = synthesize(args.out, args.identities, args.first, args.seconds, args.seed, load_config(args.config, overrides))
    print(f"synth-a2e-data: {args.identities} identities in {out}", file=sys.stderr)
    return 0


def run_mouth(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from flashtalker_jax.pipeline.bundled import BUNDLED_NAME, bundled_run
    from flashtalker_jax.pipeline.mouth_check import TABLE_COLUMNS, mouth_check, table_rows
    from flashtalker_jax.utils.report import print_table, write_report

    runs = {}
    for item in args.a2e or []:
        name, _, path = item.rpartition("=")
        runs[name or path] = Path(path)
    if not runs:
        runs[BUNDLED_NAME] = bundled_run()
    voices = tuple(v for v in args.voices.split(",") if v)
    report = mouth_check(runs, tuple(args.audio), voices, seed=args.seed)
    write_report(args.report, report)
    print_table(table_rows(report), TABLE_COLUMNS)
    return 0
