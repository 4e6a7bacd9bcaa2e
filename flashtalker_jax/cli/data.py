"""`flashtalker data ...`: synthesise speaking identities, inspect VHAP folders, pack them
for pretraining (TFDS array_record), and import a real video for tracking."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashtalker_jax.cli.options import degrees, positive_float, positive_int, seed


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="talking-head data: synth, views, inspect, build-tfds, import-video",
                                   description=__doc__)
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser("synth", help="procedural speaking identities in VHAP format (espeak-ng voices)")
    synth.add_argument("--out", required=True, help="output folder (flame/ and identity_NNN/ go inside)")
    synth.add_argument("--identities", type=positive_int, default=1, help="number of identities")
    synth.add_argument("--seconds", type=positive_float, default=10.0, help="speech per identity (whole sentences)")
    synth.add_argument("--seed", type=seed, default=0, help="seed: same seed and config, same bytes")
    synth.add_argument("--config", default="data_synth", help="config file (default configs/data_synth.py)")
    synth.add_argument("--report", help="write timings and sizes as JSON here")
    synth.set_defaults(func=run_synth, takes_overrides=True)

    views = commands.add_parser("views", help="a synthetic identity's frames re-rendered from turned cameras "
                                              "(novel-view held-out sets)")
    views.add_argument("--data", required=True, help="identity folder of `data synth` (DATASET/identity_NNN)")
    views.add_argument("--out", required=True, help="folder for the views (one IDENTITY_yaw.._pitch.. each)")
    views.add_argument("--yaw", type=degrees, action="append", default=[],
                       help="degrees about the world's vertical axis through the head (+: the camera moves "
                            "towards +x); repeat for several views (default: 0)")
    views.add_argument("--pitch", type=degrees, default=0.0, help="degrees about the horizontal axis (every view)")
    views.add_argument("--split", default="test", help="the frames to re-render (transforms_<split>.json)")
    views.add_argument("--report", help="write the views and their frame counts as JSON here")
    views.set_defaults(func=run_views)

    inspect = commands.add_parser("inspect", help="read a VHAP-format folder and summarise it (checks files)")
    inspect.add_argument("folder", help="VHAP export folder (transforms.json inside)")
    inspect.add_argument("--load-frames", action="store_true", help="also decode every image and mask")
    inspect.set_defaults(func=run_inspect)

    build = commands.add_parser("build-tfds", help="pack VHAP identity folders into TFDS array_record files")
    build.add_argument("source", help="folder of identity folders (e.g. the synth output)")
    build.add_argument("--out", required=True, help="TFDS data_dir to write")
    build.set_defaults(func=run_build)

    video = commands.add_parser("import-video", help="video -> frames, 16 kHz audio, face crop, landmarks")
    video.add_argument("video", help="input video (mp4, mov, ...)")
    video.add_argument("--out", required=True, help="output folder")
    video.add_argument("--landmarker", help="MediaPipe face_landmarker.task (default: config video.landmarker)")
    video.add_argument("--config", default="data_synth", help="config file (video section)")
    video.set_defaults(func=run_import_video, takes_overrides=True)


def run_synth(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.dataset import synthesize_dataset
    from flashtalker_jax.utils.report import print_table, write_report

    config = load_config(args.config, overrides)
    report = synthesize_dataset(args.out, args.identities, args.seconds, args.seed, config)
    write_report(args.report, {"command": "data synth", **report})
    print_table(report["rows"], ["identity", "frames", "seconds", "voice", "wall_seconds", "cpu_seconds",
                                 "megabytes"])
    print(f"data synth: {args.identities} identities in {report['wall_seconds']:.1f} s, "
          f"{report['total_megabytes']:.1f} MB under {args.out}", file=sys.stderr)
    return 0


def run_views(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.data.synth.views import render_views
    from flashtalker_jax.data.vhap import read_vhap_index
    from flashtalker_jax.utils.report import print_table, write_report

    yaws = args.yaw or [0.0]
    written = render_views(args.data, args.out, [(yaw, args.pitch) for yaw in yaws], args.split)
    rows = [{"view": path.name, "yaw": yaw, "pitch": args.pitch, "frames": len(read_vhap_index(path).timesteps)}
            for path, yaw in zip(written, yaws)]
    print_table(rows)
    write_report(args.report, {"command": "data views", "data": args.data, "views": rows})
    return 0


def run_inspect(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.utils.progress import progress
    from flashtalker_jax.utils.report import print_table

    seq = read_vhap(args.folder)
    if args.load_frames:
        for i in progress(range(len(seq)), desc="frames", unit="frame"):
            seq.load_image(i)
            seq.load_mask(i)
    audio = "none" if seq.audio is None else f"{seq.audio.shape[0] / seq.sample_rate:.2f} s"
    print_table([{"frames": len(seq), "size": f"{seq.width}x{seq.height}", "fps": seq.fps, "audio": audio,
                  "expr": seq.flame["expr"].shape[1], "shape": seq.shape.shape[0],
                  **{split: len(idx) for split, idx in seq.splits.items()}}])
    return 0


def run_build(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.data.tfds_builder import build

    builder = build(Path(args.source), Path(args.out))
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    print(f"data build-tfds: {builder.info.full_name} in {args.out}: {splits}", file=sys.stderr)
    return 0


def run_import_video(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.import_video import import_video
    from flashtalker_jax.utils.report import print_table

    config = load_config(args.config, overrides)
    if args.landmarker:
        config.video.landmarker = args.landmarker
    report = import_video(args.video, args.out, config.video, config.sample_rate)
    print_table([{k: report[k] for k in ("frames", "fps", "video_seconds", "audio_seconds", "faces_found")}])
    print("still needed for training (not produced by import-video):", file=sys.stderr)
    for path, what in report["missing_for_training"].items():
        print(f"  {path}: {what}", file=sys.stderr)
    return 0
