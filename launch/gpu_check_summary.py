"""Summarise a launch/gpu_check.sh folder: OUT/summary.json and OUT/summary.md (a markdown
table per part), also printed. Reads steps.jsonl, env.json, kernel_tests.xml and the bench
JSON reports that exist; a missing one is reported as missing, never filled in.

    python launch/gpu_check_summary.py OUT
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

BENCH_COLUMNS = {
    "bench_raster": ("backend", "gaussians", "cameras", "intersections", "fwd_ms", "fwd_bwd_ms",
                     "peak_bytes", "max_abs_diff_vs_pallas", "error"),
    "bench_avatar": None,   # every column the report has
    "bench_speak": None,
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(rows: list[dict], columns=None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    columns = [c for c in columns if any(c in r for r in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def kernel_tests(path: Path) -> dict:
    if not path.is_file():
        return {"status": "missing"}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return {**counts, "failed": failed}


def summarise(out: Path) -> dict:
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "steps.jsonl").is_file() else []
    summary = {"steps": steps,
               "env": json.loads((out / "env.json").read_text()) if (out / "env.json").is_file() else None,
               "kernel_tests": kernel_tests(out / "kernel_tests.xml"), "bench": {}}
    for name in BENCH_COLUMNS:
        path = out / f"{name}.json"
        summary["bench"][name] = json.loads(path.read_text())["rows"] if path.is_file() else None
    return summary


def markdown(summary: dict) -> str:
    text = "## Steps\n\n" + table(summary["steps"], ("step", "rc", "seconds", "limit_s"))
    env = summary["env"] or {}
    text += "\n## Device\n\n" + table([{k: env.get(k) for k in ("backend", "devices", "nvidia_smi", "jax",
                                                                 "jaxlib", "torch", "gsplat")}])
    text += "\n## Kernel tests (FLASHTALKER_KERNEL_MODE=compiled)\n\n" + table([summary["kernel_tests"]])
    for name, columns in BENCH_COLUMNS.items():
        rows = summary["bench"][name]
        text += f"\n## {name}\n\n" + (table(rows, columns) if rows is not None else "(missing)\n")
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    summary = summarise(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
