"""Make the calibrated MediaPipe embedding of the procedural head that ships with the package.

    python launch/calibrate_embedding.py            # -> flashtalker_jax/bundled/procedural_embedding
    python launch/calibrate_embedding.py --out DIR --seeds 3,5 --seconds 10 --work WORK

1. procedural speaking identities (`flashtalker data synth`, 512 x 512, one per seed) in a
   work folder;
2. its frames as an mp4, MediaPipe landmarks through `data import-video` (as for a real
   clip), calibration of the built embedding (track/calibrate.py);
3. --out gets mediapipe_landmark_embedding.npz and bundle.json: the command, seed, the
   calibration statistics, the sha256 of the npz and of the head topology it fits.
Identities for evaluation must use other seeds (BENCHMARKS.md, "Tracking" used 11).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the checkout, not an installed copy

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "flashtalker_jax" / "bundled" / "procedural_embedding"


def main(argv: list[str] | None = None) -> int:
    from flashtalker_jax.cli.main import main as flashtalker
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.track import calibrate
    from flashtalker_jax.track.bundled import EMBEDDING, RECORD, topology_sha256
    from flashtalker_jax.utils.files import sha256_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--seeds", default="3", help="comma-separated data synth seeds, one identity each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work", help="keep the identity and detections here (default: a temporary folder)")
    parser.add_argument("--landmarker", default="../shared/data/models/face_landmarker.task")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="calibrate_embedding_"))
    seeds = [int(v) for v in args.seeds.split(",") if v]
    identities = []
    for seed in seeds:
        synth = work / f"synth_{seed}"
        if not (synth / "identity_000" / "transforms.json").is_file():
            code = flashtalker(["data", "synth", "--out", str(synth), "--identities", "1",
                                "--seconds", str(args.seconds), "--seed", str(seed)])
            if code:
                return code
        identities.append(synth / "identity_000")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = work / "calibration.json"
    code = calibrate.main([*map(str, identities), "--work", str(work / "detections"),
                           "--out", str(out / EMBEDDING), "--landmarker", args.landmarker, "--report", str(report)])
    if code:
        return code
    stats = json.loads(report.read_text())
    faces = load_flame_model(identities[0].parent / "flame").faces
    record = {"command": "python launch/calibrate_embedding.py " + " ".join(argv or sys.argv[1:]),
              "seeds": seeds, "seconds": args.seconds, "made": datetime.date.today().isoformat(),
              "rms_px_before": stats["rms_px_before"], "rms_px_after": stats["rms_px_after"],
              "moved": stats["moved"], "candidates": stats["candidates"], "grid": stats["grid"],
              "topology_sha256": topology_sha256(faces), "embedding_sha256": sha256_file(out / EMBEDDING)}
    (out / RECORD).write_text(json.dumps(record, indent=1))
    if not args.work:
        shutil.rmtree(work)
    print(f"calibrate_embedding: {out} (rms {record['rms_px_before']:.2f} -> {record['rms_px_after']:.2f} px, "
          f"{record['moved']} points moved)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
