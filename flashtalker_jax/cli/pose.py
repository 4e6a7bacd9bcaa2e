"""`flashtalker adapt-pose` (an identity's head pose from audio: Talk2Me's pose database and
Pose Refiner into AVATAR/pose) and `flashtalker eval-pose` (generated vs replay vs static)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "adapt-pose", help="head pose from audio for one identity: its audio-pose database and Pose Refiner "
                           "(Talk2Me) into AVATAR/pose, for speak --pose generated",
        description="Build the audio-pose database of the tracked folder DATA (train split), train the Pose "
                    "Refiner on its own windows (run folder --out, resumable) and install both in AVATAR/pose. "
                    "Presets: --config pose_talk2me.py:cpu|quick; overrides --config.train.steps=N.")
    p.add_argument("--data", required=True, help="the identity's tracked VHAP folder (with its audio)")
    p.add_argument("--avatar", required=True, help="avatar folder to install AVATAR/pose into")
    p.add_argument("--out", help="run folder of the refiner training (default: AVATAR/../pose_run)")
    p.add_argument("--config", default="pose_talk2me", help="config file[:preset] (default configs/pose_talk2me.py)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--report", help="JSON report path")
    p.set_defaults(func=run_adapt_pose, takes_overrides=True)

    e = subparsers.add_parser(
        "eval-pose", help="head pose generated from audio vs replayed vs static, on held-out frames and speech",
        description="On the test split of DATA (frames the pose database never saw): Frechet distance of pose "
                    "velocities, velocity / acceleration ratio to the real track, beat alignment with audio "
                    "onsets, jitter, std ratio; with --audio also on that speech against the identity's own "
                    "recorded motion. Units: the identity's pose std.")
    e.add_argument("--avatar", required=True, help="avatar folder holding AVATAR/pose (or the pose folder)")
    e.add_argument("--data", required=True, help="the identity's tracked VHAP folder")
    e.add_argument("--audio", help="also score the tracks generated for this speech file")
    e.add_argument("--split", default="test", help="held-out split of DATA (default test)")
    e.add_argument("--report", help="JSON report path")
    e.set_defaults(func=run_eval_pose)


def run_adapt_pose(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.avatar.export import resolve_avatar_dir
    from flashtalker_jax.config import load_config
    from flashtalker_jax.motion.pose.job import adapt_pose
    from flashtalker_jax.train.trainer import PREEMPTED_EXIT_CODE
    from flashtalker_jax.utils.report import print_table, write_report

    config = load_config(args.config, overrides)
    avatar = resolve_avatar_dir(args.avatar)
    out = Path(args.out) if args.out else avatar.parent / "pose_run"
    report = adapt_pose(args.data, avatar, config, out, resume=args.resume)
    write_report(args.report, {"command": "adapt-pose", "data": str(args.data), "avatar": str(avatar),
                               "run": str(out), **report})
    if report["status"] == "preempted":
        print("adapt-pose: preempted; rerun with --resume", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    print_table([{"when": k, **{m: round(v, 4) if isinstance(v, float) else v for m, v in row.items()}}
                 for k, row in report["losses"].items()])
    print(f"adapt-pose: {report['folder']} ({report['database_frames']} frames, {report['database_windows']} "
          f"units of {config.task.window} frames; pose {'+'.join(report['pose_keys'])})", file=sys.stderr)
    return 0


def run_eval_pose(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.motion.pose.evaluate import evaluate_audio, evaluate_heldout
    from flashtalker_jax.motion.pose.folder import load_pose_generator
    from flashtalker_jax.utils.report import print_table, write_report

    gen = load_pose_generator(args.avatar)
    report = {"command": "eval-pose", "avatar": str(args.avatar), "data": str(args.data),
              "units": "identity pose std", "heldout": evaluate_heldout(gen, args.data, args.split)}
    tables = [("heldout", report["heldout"])]
    if args.audio:
        report["audio"] = evaluate_audio(gen, args.audio)
        tables.append(("audio", report["audio"]))
    for name, part in tables:
        print(f"eval-pose: {name} ({part['frames']} frames)", file=sys.stderr)
        print_table([{"method": m, **{k: round(v, 3) for k, v in s.items()}} for m, s in part["scores"].items()])
    write_report(args.report, report)
    return 0
