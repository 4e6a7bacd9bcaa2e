"""How many tracker steps the motion encoder's start saves (`track --init encoder RUN`).

On a folder `flashtalker track` already imported (images/, landmarks/, flame/ with its
embedding), fits the clip's landmarks twice from the same observations:
  default   the frontal neutral start, config steps (rigid + face)
  default   also at each shorter total N of --steps (rigid N/4 + face 3N/4, the config's ratio):
            what simply cutting the default fit short gives
  encoder   the encoder's prediction, no rigid stage, face stage of N steps for each N
and reports, per run, the landmark reprojection error (px, used and held-out landmarks),
the fit's jitter and wall seconds, plus for each start the smallest step count whose error
is within --tolerance of the full default run's. Table printed, JSON written (--report), like every measuring command.

  python launch/bench_track_init.py --data /path/to/tracked_clip --encoder RUN \
      --steps 100,300,600 --report bench_track_init.json
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def fit_once(cfg, rig, target, weight, crop, init=None):
    from flashtalker_jax.track import fit

    start = time.perf_counter()
    vars_, _ = fit.fit_clip(target, weight, rig, cfg.fit, crop, crop, init=init)
    return vars_, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder written by `flashtalker track`")
    parser.add_argument("--encoder", required=True, help="pretrain-motion-encoder run (RUN or RUN/encoder)")
    parser.add_argument("--steps", default="100,300,600", help="face-stage steps tried from the encoder's start")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative error counted as 'equal'")
    parser.add_argument("--report", help="JSON report path")
    args = parser.parse_args(argv)

    import numpy as np

    from flashtalker_jax.config import load_config
    from flashtalker_jax.data import vhap
    from flashtalker_jax.encoder.track_init import encoder_init_vars
    from flashtalker_jax.flame.loader import find_model_file
    from flashtalker_jax.track import fit, metrics
    from flashtalker_jax.track.job import head_stage
    from flashtalker_jax.track.observations import landmark_weights, observe, read_landmarks
    from flashtalker_jax.utils.report import print_table, write_report

    out = Path(args.data)
    cfg = load_config("track")
    model, emb, _, _ = head_stage(out, None, None, Path(cfg.video.landmarker))
    raw, found = read_landmarks(out)
    obs = observe(raw, found, cfg, out)
    crop = int(vhap.read_vhap_index(out).width)
    target = obs.landmarks[:, emb.landmark_indices]
    weight, held_out = landmark_weights(emb, obs.found, cfg.fit)
    weight = weight.astype(np.float32)
    rig = fit.make_rig(model, emb, cfg.flame.n_shape, cfg.flame.n_expr)

    def score(name, vars_, seconds, steps):
        fitted = fit.reprojection(vars_, rig, cfg.fit, crop, crop)
        q = metrics.fit_quality(target, fitted, obs.found, held_out, emb)
        return {"start": name, "steps": steps, "seconds": round(seconds, 1),
                "reprojection_px": round(q["reprojection_px"], 3),
                "heldout_reprojection_px": round(q["heldout_reprojection_px"], 3),
                "jitter_fit_px": round(q["jitter_fit_px"], 3)}

    rows = []
    vars_, seconds = fit_once(cfg, rig, target, weight, crop)
    rows.append(score("default", vars_, seconds, cfg.fit.rigid_steps + cfg.fit.face_steps))
    budgets = [int(s) for s in args.steps.split(",")]
    full = (cfg.fit.rigid_steps, cfg.fit.face_steps)
    for n in budgets:
        cfg.fit.rigid_steps, cfg.fit.face_steps = n // 4, n - n // 4
        vars_, seconds = fit_once(cfg, rig, target, weight, crop)
        rows.append(score("default", vars_, seconds, n))
    cfg.fit.rigid_steps, cfg.fit.face_steps = full
    start = time.perf_counter()
    images = [out / "images" / f"{vhap.frame_stem(t)}.png" for t in range(len(obs.found))]
    init, _ = encoder_init_vars(args.encoder, images, find_model_file(out / "flame"), model, cfg, crop)
    encode_seconds = time.perf_counter() - start
    rows.append(score("encoder", init, encode_seconds, 0))
    cfg.fit.rigid_steps = 0
    for n in budgets:
        cfg.fit.face_steps = n
        vars_, seconds = fit_once(cfg, rig, target, weight, crop, init)
        rows.append(score("encoder", vars_, seconds + encode_seconds, n))
    goal = rows[0]["reprojection_px"] * (1 + args.tolerance)
    summary = {"default_steps": rows[0]["steps"], "default_seconds": rows[0]["seconds"],
               "encode_seconds": round(encode_seconds, 1), "tolerance": args.tolerance}
    for name in ("default", "encoder"):
        enough = [r for r in rows[1:] if r["start"] == name and r["steps"] and r["reprojection_px"] <= goal]
        summary[f"{name}_steps_to_equal"] = enough[0]["steps"] if enough else None
        summary[f"{name}_seconds_to_equal"] = enough[0]["seconds"] if enough else None
    print_table(rows)
    print_table([summary])
    write_report(args.report, {"command": "bench_track_init", "data": str(out), "encoder": args.encoder,
                               "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
