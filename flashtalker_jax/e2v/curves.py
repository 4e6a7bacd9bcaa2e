"""PSNR-vs-steps of prior-initialised vs from-scratch adaptation (issue 18's measurement).

  python -m flashtalker_jax.e2v.curves --prior RUN --data IDENTITY --out DIR --steps N
      [--every K] [--seeds 0,1,2] [--views VIEW[,VIEW ...]] [--config adapt_flashtalker.py:cpu]
      [--config.task.<field>=VALUE ...]

Three adaptations of one identity (one the prior never saw) under the same config:
  scratch      the default initialisation, N steps
  prior        initialised from the prior (e2v/init.py), N steps: the same schedule
  prior_short  initialised from the prior, N // 5 steps: its own, 5x shorter schedule
               (task.refine_start scaled alike; the warmup stays)
At step 0 and every K steps (and the last) each run's held-out PSNR is taken: the first
task.eval_max_frames frames of task.eval_splits rendered from their tracked parameters
with the renderer eval-avatar uses, mean per-frame PSNR against the ground truth on the
avatar's background (procedural identities: `render_over_frame` configs are refused).
The goal (issue 18): `prior` reaches `scratch`'s final PSNR within N / 5 steps; the
report gives the first step it does, and `prior_short`'s final PSNR beside it.
--views: folders of novel views of the identity (`flashtalker data views`: its test frames
from turned cameras); each is scored at every measurement like the held-out frames (run
`views` {folder name: PSNR per step}; `goal_views`: the goal on each view's curves). A
monocular clip cannot show whether an avatar is right in 3D; GGTalker credits its visual
prior with exactly that.
--seeds: each run once per seed k, with train.seed = task.data_seed = k (the deformer's
initialisation and the order of the frames; the prior's map depends on neither): with
batch 1 two initialisations of one run end up to 1.3 dB apart (BENCHMARKS, issue 18,
session 11), so a single-seed comparison can be noise. Each run's `psnr` is then the
per-step mean over the seeds (what the goal reads), `psnr_per_seed` keeps each curve, and
`goal_per_seed` asks the goal of every seed's pair.
Writes DIR/curves.json and DIR/curves.png (the seeds' range shaded); the runs' folders
stay in DIR/<run>_seed<k>.

  python -m flashtalker_jax.e2v.curves combine --out FIG.png DIR/curves.json [...] [--report R.json]
One panel per report (identity) and a table of the goal across them (`summarize`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.adapt import make_task
from flashtalker_jax.avatar.frames import audio_frame_features, composite_target, load_frames, split_indices
from flashtalker_jax.avatar.renderer import AvatarRenderer, RenderSettings, render
from flashtalker_jax.e2v.init import pin_prior
from flashtalker_jax.errors import ConfigError, FlashtalkerError, InputFileError
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.metrics.image import psnr
from flashtalker_jax.train.trainer import fit

SHORT_FACTOR = 5   # the goal's "1/5 of its steps"
HELDOUT = "heldout"   # the identity's own held-out frames, beside any novel views


def heldout_psnr(task_cfg, graphdef: nnx.GraphDef):
    """psnr(params, rest) -> (F,) held-out PSNR per frame of a model state (module
    docstring); the frames are read once and the render compiled once."""
    from flashtalker_jax.data.vhap import read_vhap

    if task_cfg.get("render_over_frame", False):
        raise ConfigError("curves compare renders on the avatar's background: use a config without "
                          "task.render_over_frame (procedural identities)")
    seq = read_vhap(task_cfg.data)
    indices = split_indices(seq, tuple(task_cfg.eval_splits))
    if task_cfg.eval_max_frames > 0:
        indices = indices[:task_cfg.eval_max_frames]
    settings = RenderSettings.from_config(task_cfg)
    audio = audio_frame_features(seq) if task_cfg.avatar.use_audio else None
    frames = load_frames(seq, indices, settings.size, audio, task_cfg.get("mask_source", "fg"))
    batch = {k: jnp.asarray(v) for k, v in frames.items()}
    target = composite_target(batch, settings.background)

    @jax.jit
    def run(params, rest):
        model = nnx.merge(graphdef, params, rest)
        flame = FlameParams.from_track(batch, prefix="flame_", n_expr=model.flame.expr_dirs.shape[-1])
        rgb = render(AvatarRenderer(model, settings), flame, batch["viewmat"], batch["K"], batch.get("audio")).rgb
        return psnr(rgb, target, 1.0)

    return run


def curve_evaluator(task_cfg, task=None, views: tuple[str, ...] = ()):
    """{HELDOUT: heldout_psnr, view folder name: its heldout_psnr, ...} for the model of
    task_cfg (its task, made here unless given); a view is scored as task_cfg.data is."""
    task = task or make_task(task_cfg)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0))))
    evaluators = {HELDOUT: heldout_psnr(task_cfg, graphdef)}
    for view in views:
        view_cfg = ml_collections.ConfigDict(task_cfg.to_dict())
        view_cfg.data = str(view)
        evaluators[Path(view).name] = heldout_psnr(view_cfg, graphdef)
    return evaluators


def adaptation_curve(config, run_dir: Path, every: int, evaluators=None) -> dict:
    """Train config (fit, fresh run folder) and take the held-out PSNR at step 0, every
    `every` steps and the last: {"steps", "psnr", "views" {name: PSNRs}, "seconds_train",
    "prior"}. evaluators: a curve_evaluator of an equal model, compiled once for several
    runs (built here, held-out frames only, when None)."""
    task = make_task(config.task)
    evaluators = evaluators or curve_evaluator(config.task, task)
    curves = {name: {} for name in evaluators}
    eval_seconds = []

    def measure_at(step, params, rest):
        start = time.perf_counter()
        for name, evaluate in evaluators.items():
            curves[name][step] = float(np.mean(evaluate(params, rest)))
        eval_seconds.append(time.perf_counter() - start)

    _, params, rest = nnx.split(task.make_model(nnx.Rngs(config.train.seed)), nnx.Param, ...)
    measure_at(0, params, rest)   # the untrained deformer adds nothing

    def record(step, state):
        if step % every == 0 or step == config.train.steps:
            jax.block_until_ready(state.params)   # steps run ahead: bill them to training
            measure_at(step, state.params, state.rest)

    start = time.perf_counter()
    fit(task, config, run_dir, after_step=record)
    seconds = time.perf_counter() - start - sum(eval_seconds)
    steps = sorted(curves[HELDOUT])
    return {"steps": steps, "psnr": [curves[HELDOUT][s] for s in steps],
            "views": {name: [curve[s] for s in steps] for name, curve in curves.items() if name != HELDOUT},
            "seconds_train": seconds, "prior": dict(config.task.prior)}


def over_seeds(curves: list[dict]) -> dict:
    """One run's curves (adaptation_curve, one per seed, the same steps) as one: `psnr` and
    each of `views` the per-step mean, `psnr_per_seed` / `views_per_seed` each seed's,
    `seconds_train` the sum."""
    steps = curves[0]["steps"]
    if any(curve["steps"] != steps for curve in curves):
        raise ValueError("the seeds' curves were measured at different steps")
    per_seed = np.asarray([curve["psnr"] for curve in curves], np.float64)
    views = {name: [curve["views"][name] for curve in curves] for name in curves[0].get("views", {})}
    return {"steps": steps, "psnr": per_seed.mean(axis=0).tolist(), "psnr_per_seed": per_seed.tolist(),
            "views": {name: np.mean(psnrs, axis=0).tolist() for name, psnrs in views.items()},
            "views_per_seed": views, "seconds_train": float(sum(curve["seconds_train"] for curve in curves)),
            "prior": curves[0]["prior"]}


def view_run(run: dict, view: str) -> dict:
    """A run's curve on one novel view, shaped as a run (for goal_check and plots)."""
    return {"steps": run["steps"], "psnr": run["views"][view]}


def first_step_at(run: dict, level: float) -> int | None:
    """The first measured step where a run's held-out PSNR reaches `level` (None: never)."""
    return next((s for s, p in zip(run["steps"], run["psnr"]) if p >= level), None)


def goal_check(scratch: dict, prior: dict, short: dict) -> dict:
    """The issue's goal on the measured curves (module docstring), plus the same question
    for the from-scratch run's best PSNR: its final one can be below its best (e.g. once
    joint FLAME refinement starts), which would make the goal easy."""
    final, n = scratch["psnr"][-1], scratch["steps"][-1]
    best = int(np.argmax(scratch["psnr"]))
    first = first_step_at(prior, final)
    return {"scratch_final_psnr": final, "scratch_steps": n,
            "prior_first_step_at_scratch_final": first,
            "prior_fraction_of_scratch_steps": None if first is None else first / n,
            "prior_short_steps": short["steps"][-1], "prior_short_final_psnr": short["psnr"][-1],
            "met": first is not None and first <= n / SHORT_FACTOR,
            "met_by_short_run": short["psnr"][-1] >= final,
            "scratch_best_psnr": scratch["psnr"][best], "scratch_best_step": scratch["steps"][best],
            "prior_best_psnr": max(prior["psnr"]),
            "prior_first_step_at_scratch_best": first_step_at(prior, scratch["psnr"][best])}


def plot_on(ax, report: dict) -> None:
    """The three curves of one report on a matplotlib axis (and scratch / prior on each
    novel view, dotted)."""
    styles = {"scratch": ("from scratch", "-", "tab:gray"), "prior": ("prior-initialised", "-", "tab:blue"),
              "prior_short": (f"prior-initialised, 1/{SHORT_FACTOR} schedule", "--", "tab:orange")}
    for name, (label, style, colour) in styles.items():
        run = report["runs"][name]
        ax.plot(run["steps"], run["psnr"], style, color=colour, marker=".", label=label)
        if len(run.get("psnr_per_seed", ())) > 1:
            per_seed = np.asarray(run["psnr_per_seed"])
            ax.fill_between(run["steps"], per_seed.min(axis=0), per_seed.max(axis=0), color=colour, alpha=0.15, lw=0)
    for view, marker in zip(report.get("goal_views", {}), "^v<>sd"):
        for name in ("scratch", "prior"):
            run = view_run(report["runs"][name], view)
            ax.plot(run["steps"], run["psnr"], ":", color=styles[name][2], marker=marker, ms=3, lw=1,
                    label=f"{styles[name][0]}, {view_label(report, view)}")
    goal = report["goal"]
    ax.axhline(goal["scratch_final_psnr"], color="tab:gray", lw=0.8, ls=":")
    ax.axvline(goal["scratch_steps"] / SHORT_FACTOR, color="tab:red", lw=0.8, ls=":",
               label=f"1/{SHORT_FACTOR} of the from-scratch steps")
    if 0 < report["refine_start"] < goal["scratch_steps"]:
        ax.axvline(report["refine_start"], color="k", lw=0.8, ls="-.", label="joint FLAME refinement from here")
    ax.set_xlabel("adaptation step")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7 if not report.get("goal_views") else 5, loc="lower right", framealpha=0.5)


def view_label(report: dict, view: str) -> str:
    """A view folder's name without its identity's (identity_006_yaw+30_pitch+0 -> yaw+30_pitch+0)."""
    prefix = Path(report["data"]).name + "_"
    return view[len(prefix):] if view.startswith(prefix) else view


def goal_row(goal: dict, scratch: dict, prior: dict) -> dict:
    """summarize's columns of one goal_check and its two curves."""
    at = goal["scratch_steps"] // SHORT_FACTOR
    psnr_at = {name: dict(zip(run["steps"], run["psnr"])).get(at) for name, run in (("scratch", scratch),
                                                                                    ("prior", prior))}
    return {"scratch_final": goal["scratch_final_psnr"], "prior_final": prior["psnr"][-1],
            f"scratch_at_{at}": psnr_at["scratch"], f"prior_at_{at}": psnr_at["prior"],
            "prior_fraction": goal["prior_fraction_of_scratch_steps"], "met": goal["met"]}


def summarize(reports: list[dict]) -> dict:
    """The goal across identities: per report (clip name) the fraction of the from-scratch
    steps the prior run needed (None: never), the PSNRs at 1/5 of the steps and at the end,
    and how many identities met the goal; the same per novel view (`views`)."""
    rows, view_rows = [], []
    for report in reports:
        runs, identity = report["runs"], Path(report["data"]).name
        rows.append({"identity": identity, "seeds": len(report.get("seeds", [0])),
                     **goal_row(report["goal"], runs["scratch"], runs["prior"])})
        for view, goal in report.get("goal_views", {}).items():
            view_rows.append({"identity": identity, "view": view_label(report, view),
                              **goal_row(goal, view_run(runs["scratch"], view), view_run(runs["prior"], view))})
    return {"identities": rows, "met": sum(r["met"] for r in rows), "of": len(rows),
            "views": view_rows, "views_met": sum(r["met"] for r in view_rows)}


def plot_many(reports: list[dict], path: Path) -> None:
    """One panel per report, side by side (at most 4 per row); titled by identity."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(reports))
    rows = -(-len(reports) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax, report in zip(axes.flat, reports):
        plot_on(ax, report)
        ax.set_title(Path(report["data"]).name, fontsize=9)
    for ax in axes.flat[len(reports):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def combine(argv: list[str]) -> int:
    from flashtalker_jax.utils.files import read_json_object
    from flashtalker_jax.utils.report import print_table, write_report

    parser = argparse.ArgumentParser(prog="python -m flashtalker_jax.e2v.curves combine")
    parser.add_argument("reports", nargs="+", help="curves.json files of this command")
    parser.add_argument("--out", required=True, help="PNG with one panel per report")
    parser.add_argument("--report", default="", help="JSON of the goal across the reports")
    args = parser.parse_args(argv)
    fix = "pass the curves.json files this command wrote (DIR/curves.json)"
    reports = [read_json_object(path, "a curves report", fix, InputFileError) for path in args.reports]
    for path, report in zip(args.reports, reports):
        if not {"goal", "runs", "data"} <= set(report):
            raise InputFileError(path, "not a curves report (no 'goal', 'runs' or 'data')", fix)
    plot_many(reports, Path(args.out))
    summary = summarize(reports)
    print_table(summary["identities"])
    print(f"goal met on {summary['met']} of {summary['of']} identities; figure: {args.out}")
    if summary["views"]:
        print_table(summary["views"])
        print(f"novel views: goal met on {summary['views_met']} of {len(summary['views'])}")
    if args.report:
        write_report(Path(args.report), summary)
    return 0


def measure(prior_dir, data_dir, out_dir, steps: int, every: int, config_name: str,
            overrides: list[str], seeds: tuple[int, ...] = (0,), views: tuple[str, ...] = ()) -> dict:
    """The three runs per seed and the report (module docstring); writes curves.json and
    curves.png."""
    from flashtalker_jax.config import load_config

    out_dir = Path(out_dir)
    refine_start = load_config(config_name, overrides).task.refine_start
    short_refine = refine_start // SHORT_FACTOR if refine_start > 0 else refine_start
    plans = {"scratch": (steps, refine_start, ""), "prior": (steps, refine_start, prior_dir),
             "prior_short": (steps // SHORT_FACTOR, short_refine, prior_dir)}
    per_seed, evaluators = {name: [] for name in plans}, None
    for seed in seeds:
        for name, (n, refine, prior) in plans.items():
            config = load_config(config_name, [*overrides, f"--config.train.steps={n}",
                                               f"--config.train.checkpoint_every={n}",
                                               f"--config.task.refine_start={refine}", f"--config.train.seed={seed}",
                                               f"--config.task.data_seed={seed}"])
            config.task.data = str(Path(data_dir))
            config.task.prior.path = str(prior)
            run_dir = out_dir / f"{name}_seed{seed}"
            config.task.prior.update(pin_prior(config.task.prior, run_dir, resume=False))
            evaluators = evaluators or curve_evaluator(config.task, views=views)   # every run: the same model
            curve = adaptation_curve(config, run_dir, every, evaluators)
            per_seed[name].append(curve)
            print(f"curves: {name}, seed {seed}: {curve['psnr'][0]:.2f} -> {curve['psnr'][-1]:.2f} dB in {n} steps",
                  file=sys.stderr)
    runs = {name: over_seeds(curves) for name, curves in per_seed.items()}
    report = {"command": "python -m flashtalker_jax.e2v.curves", "data": str(data_dir), "prior": str(prior_dir),
              "config": config_name, "overrides": overrides, "every": every, "refine_start": refine_start,
              "seeds": list(seeds), "runs": runs,
              "goal": goal_check(runs["scratch"], runs["prior"], runs["prior_short"]),
              "goal_per_seed": [goal_check(*(per_seed[name][k] for name in plans)) for k in range(len(seeds))],
              "views": [str(view) for view in views],
              "goal_views": {Path(view).name: goal_check(*(view_run(runs[name], Path(view).name) for name in plans))
                             for view in views}}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_many([report], out_dir / "curves.png")
    return report


def parse_seeds(text: str) -> tuple[int, ...]:
    """--seeds "0,1,2" -> (0, 1, 2): distinct non-negative integers."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct non-negative integers, e.g. 0,1,2")
    return seeds


def main(argv: list[str] | None = None) -> int:
    from flashtalker_jax.cli.options import name_list
    from flashtalker_jax.utils.report import write_report

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["combine"]:
        try:
            return combine(argv[1:])
        except FlashtalkerError as exc:
            print(f"curves combine: error: {exc}", file=sys.stderr)
            return 2

    parser = argparse.ArgumentParser(prog="python -m flashtalker_jax.e2v.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", required=True, help="run folder of `pretrain-e2v` (RUN or RUN/prior)")
    parser.add_argument("--data", required=True, help="identity folder (VHAP) the prior never saw")
    parser.add_argument("--out", required=True, help="folder for the three runs, curves.json and curves.png")
    parser.add_argument("--steps", type=int, default=600, help="steps of the from-scratch run")
    parser.add_argument("--every", type=int, default=20, help="held-out PSNR every this many steps")
    parser.add_argument("--seeds", default="0", type=parse_seeds,
                        help="comma-separated seeds (train.seed = task.data_seed): each run once per seed, curves averaged")
    parser.add_argument("--views", type=name_list, default=[], help="comma-separated novel-view folders of the identity "
                                                    "(`flashtalker data views`), scored like the held-out frames")
    parser.add_argument("--config", default="adapt_flashtalker.py:cpu", help="adapt config file[:preset]")
    args, overrides = parser.parse_known_args(argv)
    if any(arg.startswith(("--config.train.seed", "--config.task.data_seed")) for arg in overrides):
        parser.error("pass the seeds with --seeds, not --config.train.seed / --config.task.data_seed")
    report = measure(args.prior, args.data, args.out, args.steps, args.every, args.config, overrides, args.seeds,
                     tuple(args.views))
    write_report(Path(args.out) / "curves.json", report)
    print(json.dumps({"goal": report["goal"], "goal_views": report["goal_views"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
