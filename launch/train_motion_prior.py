"""Train the motion prior that ships with the package, bit for bit from fixed seeds.

    python launch/train_motion_prior.py                      # -> flashtalker_jax/bundled/motion_prior
    python launch/train_motion_prior.py --out DIR --config motion_prior.py:tiny [--config.X=Y ...]

1. motion-only procedural speaking identities (`flashtalker synth-a2e-data`, settings and
   seed from configs/motion_prior.py) in a temporary work folder (--work keeps them);
2. `pretrain-a2e` with the config's `pretrain` block (Audio2Param, audio2param.py:bundled);
3. the run's model files copied to --out with the machine's paths removed from model.json,
   plus bundle.json (the resolved config, the sha256 of every model file, the procedural
   head's content hash) and training_report.json (summary, loss curve, timings, and the
   mouth-closure check of pipeline/mouth_check.py on phone-timed speech).
Same software, same files: tests/speak/test_bundled_prior.py trains the tiny preset twice
and compares checksums, and checks the shipped folder against its bundle.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the checkout, not an installed copy

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "flashtalker_jax" / "bundled" / "motion_prior"
PATH_FIELDS = ("dataset", "flame_dir", "wav2vec2_dir", "feature_cache")


def plain_config(cfg) -> dict:
    """The config as JSON values (tuples -> lists), as bundle.json stores it."""
    return json.loads(json.dumps(cfg.to_dict(), default=list))


def portable_model_json(path: Path) -> None:
    """Remove the training machine's paths (temporary data folders) from model.json."""
    meta = json.loads(path.read_text())
    for name in PATH_FIELDS:
        if meta["task"].get(name):
            meta["task"][name] = ""
    meta["sources"] = {**meta.get("sources", {}), "dataset": "launch/train_motion_prior.py (synthesised)",
                       "flame_dir": None}
    path.write_text(json.dumps(meta, indent=1, sort_keys=True))


def loss_curve(run: Path) -> list[dict]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows.append({k: v for k, v in record.items() if k in ("step", "loss", "train/loss") or k.startswith("loss")})
    return rows


def train(cfg, out: Path, work: Path, config_name: str, overrides: list[str]) -> dict:
    from flashtalker_jax.flame.procedural import procedural_model
    from flashtalker_jax.motion.jobs import pretrain, synthesize
    from flashtalker_jax.pipeline import bundled
    from flashtalker_jax.pipeline.mouth_check import mouth_check

    start = time.perf_counter()
    data, run = work / "data", work / "run"
    synthesize(data, cfg.data.identities, 0, cfg.data.seconds, cfg.seed, cfg.data.synth)
    data_seconds = time.perf_counter() - start
    summary = pretrain(cfg.pretrain.copy_and_resolve_references(), str(data), str(run))
    if summary["status"] != "finished" and summary["steps"] != cfg.pretrain.train.steps:
        raise SystemExit(f"train_motion_prior: training ended with status {summary['status']!r} "
                         f"at step {summary['steps']}")
    out.mkdir(parents=True, exist_ok=True)
    for name in bundled.MODEL_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / name, out / name)
    portable_model_json(out / "model.json")
    check = mouth_check({"model": out}, flame_seed=cfg.flame_seed)
    check["runs"]["model"]["run"] = "(this folder)"   # not the machine's path
    bundle = {"name": bundled.BUNDLED_NAME, "kind": json.loads((out / "model.json").read_text())["kind"],
              "command": f"python launch/train_motion_prior.py --config {config_name} " + " ".join(overrides),
              "config_name": config_name, "overrides": overrides, "config": plain_config(cfg),
              "flame_seed": cfg.flame_seed,
              "flame_content_sha256": bundled.flame_content_sha256(procedural_model(cfg.flame_seed)),
              "sha256": bundled.model_sha256(out)}
    (out / bundled.BUNDLE_FILE).write_text(json.dumps(bundle, indent=1, sort_keys=True))
    report = {"summary": summary, "data_seconds": data_seconds, "total_seconds": time.perf_counter() - start,
              "loss_curve": loss_curve(run), "mouth_check": check,
              "parameters": int(sum(a.size for a in __import__("numpy").load(out / "model.npz").values()))}
    (out / bundled.REPORT_FILE).write_text(json.dumps(report, indent=1, default=float))
    return bundle


def main(argv: list[str] | None = None) -> int:
    from flashtalker_jax.config import load_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="bundle folder (default: the package's)")
    parser.add_argument("--config", default="motion_prior", help="configs/motion_prior.py[:preset]")
    parser.add_argument("--work", help="keep the synthesised data and the training run here")
    args, rest = parser.parse_known_args(argv)
    overrides = [a[len("--config."):] for a in rest if a.startswith("--config.")]
    if len(overrides) != len(rest):
        parser.error(f"unknown arguments {[a for a in rest if not a.startswith('--config.')]}")
    cfg = load_config(args.config, overrides)
    if args.work:
        work = Path(args.work)
        if work.exists() and any(work.iterdir()):
            parser.error(f"--work {work}: not empty (a fresh run needs an empty folder)")
        bundle = train(cfg, Path(args.out), work, args.config, overrides)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bundle = train(cfg, Path(args.out), Path(tmp), args.config, overrides)
    print(json.dumps(bundle["sha256"], indent=1))
    print(f"train_motion_prior: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
