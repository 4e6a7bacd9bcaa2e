"""`flashtalker track`: FLAME tracking of real videos into VHAP folders (flashtalker_jax/track)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def register(subparsers) -> None:
    from flashtalker_jax.cli.options import non_negative_int, positive_int

    track = subparsers.add_parser(
        "track", help="real video -> tracked FLAME in a VHAP folder (landmarks, masks, camera, splits)")
    track.add_argument("video", nargs="+",
                       help="video file(s), folder(s) made by `data import-video`, or a folder of videos "
                            "(then each clip goes to OUT/<name>/)")
    track.add_argument("--out", required=True, help="output folder (one clip) or parent folder (several)")
    track.add_argument("--flame", help="FLAME model folder (default: the procedural head)")
    track.add_argument("--embedding", help="mediapipe_landmark_embedding.npz for --flame (default: built from "
                                           "MediaPipe's canonical mesh)")
    track.add_argument("--landmarker", help="MediaPipe face_landmarker.task (default: config video.landmarker)")
    track.add_argument("--segmenter", help="MediaPipe selfie_segmenter.tflite (default: config video.segmenter)")
    track.add_argument("--config", default="track", help="config file[:preset] (default configs/track.py)")
    track.add_argument("--init", nargs=2, metavar=("encoder", "RUN"),
                       help="start the fit from a motion encoder's prediction (`--init encoder RUN`, a "
                            "pretrain-motion-encoder run) instead of a frontal neutral head; lower "
                            "--config.fit.rigid_steps / face_steps to take the saving (BENCHMARKS.md)")
    track.add_argument("--report", help="write the per-clip reports as JSON here")
    track.add_argument("--process-id", type=non_negative_int, default=0, help="this process's index when several share the clips")
    track.add_argument("--num-processes", type=positive_int, default=1, help="processes sharing the clips (clip i -> i mod N)")
    track.set_defaults(func=run_track, takes_overrides=True)


def clip_list(sources: list[str]) -> list[Path]:
    """Each source as a clip: a video file, an import folder, or the videos inside a folder."""
    clips = []
    for source in map(Path, sources):
        if source.is_dir() and not (source / "import_report.json").is_file():
            clips += sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            clips.append(source)
    return clips


def run_track(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.errors import ConfigError, FlashtalkerError
    from flashtalker_jax.track.job import REPORT_FILE, track_clip
    from flashtalker_jax.utils.report import print_table, write_report

    if args.process_id >= args.num_processes:
        raise ConfigError(f"--process-id {args.process_id} must be below --num-processes {args.num_processes}")
    config = load_config(args.config, overrides)
    if args.landmarker:
        config.video.landmarker = args.landmarker
    if args.segmenter:
        config.video.segmenter = args.segmenter
    if args.init:
        if args.init[0] != "encoder":
            raise ConfigError(f"--init {args.init[0]} {args.init[1]}: the only initialiser is 'encoder' "
                              "(--init encoder RUN)")
        config.init_encoder = str(Path(args.init[1]).resolve())
    clips = clip_list(args.video)
    many = clips != [Path(args.video[0])]   # several sources, or a folder of videos
    mine = [c for i, c in enumerate(clips) if i % args.num_processes == args.process_id]
    rows, reports, failed = [], [], 0
    for clip in mine:
        out = Path(args.out) / clip.stem if many else Path(args.out)
        if many and (out / REPORT_FILE).is_file() and (out / "transforms.json").is_file():
            print(f"track: {clip} already tracked in {out}, skipped", file=sys.stderr)
            continue
        try:
            report = track_clip(clip, out, config, flame=args.flame, embedding=args.embedding)
        except FlashtalkerError as err:
            if not many:
                raise
            failed += 1
            print(f"track: {clip}: {err}", file=sys.stderr)
            continue
        reports.append(report)
        rows.append({"clip": clip.name, "frames": report["frames"],
                     "reproj_px": report["reprojection_px"], "heldout_%eye": report["heldout_reprojection_pct_eye"],
                     "jitter_fit": report["jitter_fit_px"], "jitter_mp": report["jitter_mediapipe_px"],
                     "fit_s": report["seconds"]["fit"], "total_s": sum(report["seconds"].values())})
        if report["scene_cuts"]:
            print(f"track: {clip}: possible scene cuts at frames {report['scene_cuts']}", file=sys.stderr)
        if report["audio_note"]:
            print(f"track: {clip}: {report['audio_note']}", file=sys.stderr)
    if rows:
        print_table(rows)
    write_report(args.report, {"command": "track", "clips": reports, "failed": failed})
    return 1 if failed else 0
