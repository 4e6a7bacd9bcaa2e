"""`flashtalker head ...`: write the procedural FLAME-format head, render a demo sheet."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from flashtalker_jax.cli.options import positive_int, seed


def register(subparsers) -> None:
    parser = subparsers.add_parser("head", help="procedural FLAME head: synth files, demo sheet",
                                   description=__doc__)
    commands = parser.add_subparsers(dest="head_command", metavar="HEAD_COMMAND", required=True)

    synth = commands.add_parser("synth", help="write the procedural head as FLAME files under DIR/flame/")
    synth.add_argument("--out", required=True, help="output folder (DIR/flame/ is created)")
    synth.add_argument("--seed", type=seed, default=0, help="seed of the random blendshape fields")
    synth.add_argument("--landmarker", help="MediaPipe face_landmarker.task: also write DIR/flame/"
                                            "mediapipe_landmark_embedding.npz (what `track` fits with)")
    synth.add_argument("--report", help="write sizes and timing as JSON here")
    synth.set_defaults(func=run_synth)

    demo = commands.add_parser("demo", help="render a turntable + expression sheet PNG of a head")
    demo.add_argument("--out", required=True, help="output folder (head_demo.png goes inside)")
    demo.add_argument("--flame", help="FLAME file or folder (default: the procedural head, seed 0)")
    demo.add_argument("--size", type=positive_int, default=192, help="pixels per view")
    demo.add_argument("--named-expressions", action="store_true",
                      help="with --flame: show the procedural head's named expressions (head synth folders)")
    demo.set_defaults(func=run_demo)


def run_synth(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.flame.procedural import write_procedural_flame
    from flashtalker_jax.utils.report import print_table, write_report

    start = time.perf_counter()
    folder = write_procedural_flame(args.out, seed=args.seed)
    if args.landmarker:
        from flashtalker_jax.track.job import head_stage

        print(f"head synth: landmark embedding {head_stage(Path(args.out), None, None, Path(args.landmarker))[3]}",
              file=sys.stderr)
    seconds = time.perf_counter() - start
    rows = [{"file": p.name, "megabytes": round(p.stat().st_size / 1e6, 3)}
            for p in sorted(folder.iterdir())]
    write_report(args.report, {"command": "head synth", "folder": str(folder), "seed": args.seed,
                               "wall_seconds": seconds, "files": rows})
    print_table(rows, ["file", "megabytes"])
    print(f"head synth: procedural FLAME head (seed {args.seed}) in {seconds:.1f} s -> {folder}",
          file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from flashtalker_jax.errors import ModelFileError
    from flashtalker_jax.flame import load_flame_model, load_region_masks
    from flashtalker_jax.flame.demo import render_demo_sheet, save_png
    from flashtalker_jax.flame.loader import find_model_file, flame_template
    from flashtalker_jax.flame.procedural import (EXPR_COMPONENTS, generate_procedural_flame,
                                                  model_from_generated)
    from flashtalker_jax.utils.progress import progress

    if args.flame:
        model = load_flame_model(args.flame)
        components = EXPR_COMPONENTS if args.named_expressions else {}
        try:
            masks = load_region_masks(find_model_file(args.flame).parent, v_template=flame_template(model))
        except ModelFileError:
            masks = None  # no FLAME_masks.pkl beside the model: lips stay uncoloured
    else:
        data = generate_procedural_flame(seed=0)
        model, components, masks = model_from_generated(data), EXPR_COMPONENTS, data["masks"]
    sheet = render_demo_sheet(model, components, size=args.size, progress_bar=progress,
                              masks=masks)
    path = Path(args.out) / "head_demo.png"
    save_png(sheet, path)
    print(f"head demo: {sheet.shape[1]}x{sheet.shape[0]} sheet -> {path}", file=sys.stderr)
    return 0

