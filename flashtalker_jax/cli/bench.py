"""`flashtalker bench ...`: performance measurements (each writes --report JSON).

Subcommands are registered from SUBCOMMANDS: add a (name, help, add_arguments, handler)
entry to add one.
"""
from __future__ import annotations

import argparse
import sys

from flashtalker_jax.cli import avatar as _avatar
from flashtalker_jax.cli import speak as _speak
from flashtalker_jax.cli.options import count_list, name_list, positive_int


def _raster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=count_list, default="10k,50k,100k,1m",
                   help="Gaussian counts, comma separated (k/m suffixes), default 10k,50k,100k,1m")
    p.add_argument("--batch", type=count_list, default="1,16",
                   help="camera batch sizes, default 1,16")
    p.add_argument("--backends", type=name_list, default="reference,pallas,gsplat",
                   help="comma separated: reference, pallas, tiles, chunked, gsplat (CUDA only)")
    p.add_argument("--width", type=positive_int, default=512)
    p.add_argument("--height", type=positive_int, default=512)
    p.add_argument("--runs", type=positive_int, default=20, help="timed runs per row (median)")
    p.add_argument("--scene", default="blob",
                   help="comma separated: blob = random Gaussians per --sizes/--batch (default); "
                   "avatar = one frame of a fresh avatar (configs/adapt_flashtalker.py:cpu) on a "
                   "procedural identity (square images; --sizes, --batch ignored)")
    p.add_argument("--report", default=None, help="write the JSON report here")


def _raster(args, overrides) -> int:
    from flashtalker_jax.errors import ConfigError
    from flashtalker_jax.render import bench
    from flashtalker_jax.utils.progress import progress
    from flashtalker_jax.utils.report import print_table, write_report

    backends = args.backends
    unknown = set(backends) - {"reference", "pallas", "tiles", "chunked", "gsplat"}
    if unknown:
        raise ConfigError(f"unknown backends {sorted(unknown)}; use reference, pallas, tiles, "
                          "chunked, gsplat")
    def report(rows, notes=()):
        write_report(args.report, {"command": "bench raster", "width": args.width,
                                   "height": args.height, "runs": args.runs, "scene": args.scene,
                                   "rows": rows, "notes": list(notes)})

    scenes = [s.strip() for s in args.scene.split(",") if s.strip()]
    if set(scenes) - {"blob", "avatar"} or not scenes:
        raise ConfigError(f"--scene {args.scene!r}: use blob, avatar or both (comma separated)")
    rows, notes = [], []
    for scene in scenes:   # one report, each scene's rows after the last's
        done = list(rows)
        scene_rows, scene_notes = bench.run(
            args.sizes, args.batch, backends, args.width, args.height, args.runs,
            progress=lambda it: progress(it, desc=f"bench raster ({scene})", unit="row"),
            on_row=lambda r, done=done: report(done + r), scene=scene)
        rows += scene_rows
        notes += [n for n in scene_notes if n not in notes]
    columns = ["backend", "scene", "gaussians", "cameras", "intersections", "fwd_ms", "fwd_bwd_ms",
               "fwd_floor_ms", "fwd_bwd_floor_ms", "alpha_pass_ms", "xla_fwd_bwd_bytes",
               "peak_bytes", "max_abs_diff_vs_pallas", "error"]
    present = [c for c in columns if any(c in r for r in rows)]
    print_table(rows, present)
    for note in notes:
        print(note)
    report(rows, notes)
    return rows_exit_code(rows, "bench raster")


def rows_exit_code(rows: list[dict], command: str) -> int:
    """1 (with a line naming the first failure) when any row errored, else 0: a benchmark
    whose rows failed must not look like a success to a script or CI job."""
    failed = [r for r in rows if r.get("error")]
    if not failed:
        return 0
    print(f"{command}: {len(failed)} of {len(rows)} rows failed (see the error column), first: "
          f"{failed[0]['error']}", file=sys.stderr)
    return 1


SUBCOMMANDS = [
    ("raster", "Time the Gaussian rasterizer (forward, forward+backward, memory).",
     _raster_arguments, _raster),
    ("speak", _speak.BENCH_HELP, _speak.bench_arguments, _speak.run_bench),
    ("avatar", _avatar.BENCH_HELP, _avatar.bench_arguments, _avatar.run_bench),
]


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="Performance benchmarks (JSON reports).")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    for name, help_text, add_arguments, handler in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=handler)
