"""`flashtalker adapt --prior RUN` (e2v/init.py): a briefly pretrained prior starts the
adaptation of an identity it never saw ahead of the default initialisation and stays ahead
at equal steps; a prior pretrained for other Gaussians or another FLAME chart is refused;
the run records its prior and a resume uses that one (and only that one); the curves' goal
check reads the measured steps and several seeds' curves average per step;
condition_template keeps the attributes asked, floors the log-scales and keeps the
rotations."""
import json
import shutil

import numpy as np
import pytest
from flax import nnx

from conftest import quick_config
from flashtalker_jax.avatar.adapt import load_avatar, prepare
from flashtalker_jax.avatar.jobs import adapt
from flashtalker_jax.config import load_config
from flashtalker_jax.e2v import curves
from flashtalker_jax.e2v.curves import goal_check, heldout_psnr, over_seeds, parse_seeds
from flashtalker_jax.e2v.init import condition_template, pin_prior, prior_template
from flashtalker_jax.e2v.prior import write_prior
from flashtalker_jax.e2v.task import build_geometry, make_generator, make_task, resolve_flame_dir
from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.render.projection import quat_to_rotmat
from flashtalker_jax.train.state import merge_model
from flashtalker_jax.train.trainer import fit

PRIOR_STEPS, ADAPT_STEPS = 20, 5


def adapt_config(dataset, prior=""):
    """A tiny adaptation of identity 1 placed like the quick prior (32^2 UV grid, 3 teeth
    Gaussians per face, 64 px) so that its UV map fits. It takes the whole map (every
    attribute, no scale floor): the runs below check the prior's one-shot head start; the
    default's conditioning is tested on its own (test_condition_template_...)."""
    config = load_config("adapt_flashtalker", [
        f"task.data={dataset / 'identity_001'}", f"task.flame={dataset / 'flame'}", f"task.prior.path={prior}",
        "task.resolution=64", "task.placement.uv_resolution=32", "task.avatar.feature_dim=8",
        "task.avatar.heads=2", "task.avatar.expr_tokens=2", "task.avatar.offset_hidden=16",
        "task.avatar.color_hidden=8", "task.avatar.use_audio=False", "task.refine_start=3",
        "task.eval_max_frames=8",
        f"train.steps={ADAPT_STEPS}", f"train.checkpoint_every={ADAPT_STEPS}", "train.log_every=3",
        "train.async_checkpoint=False", "optim.warmup_steps=2"])
    config.task.prior.attributes = ("local_means", "local_log_scales", "local_quats", "opacity_logits", "color_logits")
    config.task.prior.min_log_scale = -100.0
    return config


@pytest.fixture(scope="module")
def trained_prior(tiny_dataset, tmp_path_factory):
    """The quick prior pretrained on identity 0 only (identity 1 is adapted: unseen)."""
    cfg = quick_config(tiny_dataset, "task.max_identities=1", f"train.steps={PRIOR_STEPS}",
                       f"train.checkpoint_every={PRIOR_STEPS}", "optim.lr=0.005", "train.async_checkpoint=False")
    run = tmp_path_factory.mktemp("prior")
    result = fit(make_task(cfg.task), cfg, run)
    return write_prior(run / "prior", merge_model(result.graphdef, result.state), cfg.task, result.step)


@pytest.fixture(scope="module")
def untrained_prior(tiny_dataset, tmp_path_factory):
    cfg = quick_config(tiny_dataset).task
    generator = make_generator(cfg, build_geometry(cfg, resolve_flame_dir(cfg, tiny_dataset)), nnx.Rngs(0))
    return write_prior(tmp_path_factory.mktemp("untrained") / "prior", generator, cfg, steps=0)


@pytest.fixture(scope="module")
def runs(tiny_dataset, trained_prior, tmp_path_factory):
    """{"prior", "scratch"}: run folders of equal-step adaptations."""
    root = tmp_path_factory.mktemp("adapt")
    for name, prior in (("prior", trained_prior), ("scratch", "")):
        assert adapt(adapt_config(tiny_dataset, prior), root / name)["status"] == "completed"
    return {name: root / name for name in ("prior", "scratch")}


def _params(run):
    model, _ = load_avatar(run / "avatar")
    return {"/".join(map(str, k)): np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def test_prior_initialised_beats_scratch_at_equal_steps(tiny_dataset, runs):
    cfg = adapt_config(tiny_dataset).task
    models = {name: load_avatar(run / "avatar")[0] for name, run in runs.items()}
    evaluate = heldout_psnr(cfg, nnx.graphdef(models["prior"]))
    psnr = {name: float(np.mean(evaluate(*nnx.split(m, nnx.Param, ...)[1:]))) for name, m in models.items()}
    assert np.isfinite(list(psnr.values())).all()
    assert psnr["prior"] > psnr["scratch"] + 1.0, psnr
    saved = json.loads((runs["prior"] / "avatar" / "config.json").read_text())["prior"]
    assert saved["path"] and len(saved["sha256"]) == 64   # the avatar records its prior


def test_heldout_psnr_reads_the_masks_of_task_mask_source(tiny_dataset, runs, tmp_path):
    """A tracked clip is scored against its head masks (its fg masks hold the torso): with
    head_masks/ all zero the target is the background everywhere, exactly as for a copy
    whose fg masks are all zero, and not the fg-masked frame."""
    import shutil

    from PIL import Image

    model = load_avatar(runs["scratch"] / "avatar")[0]
    _, params, rest = nnx.split(model, nnx.Param, ...)
    clips = {name: tmp_path / name for name in ("head", "blank_fg")}
    for name, clip in clips.items():
        shutil.copytree(tiny_dataset / "identity_001", clip)
        masks = clip / ("head_masks" if name == "head" else "fg_masks")
        masks.mkdir(exist_ok=True)
        for image in sorted((clip / "images").iterdir()):
            Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / image.name)

    def score(data, mask_source):
        cfg = adapt_config(tiny_dataset).task
        cfg.data, cfg.mask_source = str(data), mask_source
        return np.asarray(heldout_psnr(cfg, nnx.graphdef(model))(params, rest))

    head, blank = score(clips["head"], "head"), score(clips["blank_fg"], "fg")
    np.testing.assert_allclose(head, blank, rtol=0, atol=1e-5)   # the same arrays, the same program
    assert np.abs(head - score(clips["head"], "fg")).max() > 0.5


def test_curves_score_novel_views_like_the_heldout_frames(tiny_dataset, tmp_path):
    """A view of the held-out frames from the clip's own camera (`data views`, yaw 0) is
    the same frames up to 8-bit rounding: it scores as the held-out set does at every
    measured step (|diff| < 0.05 dB: a one-level difference on a few pixels); a turned view
    scores otherwise; the report carries each view's curve and goal."""
    from flashtalker_jax.data.synth.views import render_views
    from flashtalker_jax.e2v.curves import HELDOUT, adaptation_curve, curve_evaluator

    front, turned = render_views(tiny_dataset / "identity_001", tmp_path / "views", [(0.0, 0.0), (40.0, 0.0)])
    config = adapt_config(tiny_dataset)
    config.train.steps = config.train.checkpoint_every = 2
    evaluators = curve_evaluator(config.task, views=(str(front), str(turned)))
    assert list(evaluators) == [HELDOUT, front.name, turned.name]
    curve = adaptation_curve(config, tmp_path / "run", 1, evaluators)
    assert curve["steps"] == [0, 1, 2] and sorted(curve["views"]) == sorted([front.name, turned.name])
    np.testing.assert_allclose(curve["views"][front.name], curve["psnr"], rtol=0, atol=0.05)
    assert np.abs(np.subtract(curve["views"][turned.name], curve["psnr"])).max() > 0.2
    run = over_seeds([curve, curve])
    assert run["views"] == curve["views"] and run["views_per_seed"][turned.name] == [curve["views"][turned.name]] * 2
    report = {"data": str(tiny_dataset / "identity_001"), "refine_start": -1,
              "runs": {"scratch": run, "prior": run, "prior_short": run}, "goal": goal_check(run, run, run),
              "goal_views": {turned.name: goal_check(*(curves.view_run(run, turned.name),) * 3)}}
    summary = curves.summarize([report])
    row = summary["views"][0]
    assert (row["identity"], row["view"], row["prior_final"]) == ("identity_001", "yaw+40_pitch+0",
                                                                  curve["views"][turned.name][-1])
    assert summary["views_met"] == int(report["goal_views"][turned.name]["met"])
    curves.plot_many([report], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_resume_before_any_checkpoint_starts_from_the_recorded_prior(tiny_dataset, runs, tmp_path):
    """Killed before its first checkpoint, the run's folder holds only its config: resumed
    without --prior it rebuilds the same prior start and ends where the uninterrupted run did."""
    killed = tmp_path / "run"
    shutil.copytree(runs["prior"], killed)
    shutil.rmtree(killed / "checkpoints")
    shutil.rmtree(killed / "avatar")
    assert adapt(adapt_config(tiny_dataset), killed, resume=True)["status"] == "completed"
    want, got = _params(runs["prior"]), _params(killed)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_resume_pins_the_recorded_prior(runs, trained_prior, untrained_prior, tmp_path):
    recorded = json.loads((runs["prior"] / "config.json").read_text())["task"]["prior"]
    asked = load_config("adapt_flashtalker").task.prior
    assert pin_prior(asked, runs["prior"], resume=True) == {"path": recorded["path"], "sha256": recorded["sha256"]}
    moved = shutil.copytree(trained_prior, tmp_path / "moved")   # the same bytes elsewhere: accepted
    asked.path = str(moved)
    assert pin_prior(asked, runs["prior"], resume=True)["sha256"] == recorded["sha256"]
    asked.path = str(untrained_prior)
    with pytest.raises(ConfigError, match="another one"):
        pin_prior(asked, runs["prior"], resume=True)
    with pytest.raises(ConfigError, match="started without a prior"):
        pin_prior(asked, runs["scratch"], resume=True)
    changed = tmp_path / "changed"
    shutil.copytree(runs["prior"], changed, ignore=shutil.ignore_patterns("checkpoints", "avatar"))
    config = json.loads((changed / "config.json").read_text())
    config["task"]["prior"]["path"] = str(moved)
    (changed / "config.json").write_text(json.dumps(config))
    (moved / "meta.json").write_text((moved / "meta.json").read_text() + "\n")
    asked.path = ""
    with pytest.raises(ModelFileError, match="changed since this run started"):
        pin_prior(asked, changed, resume=True)


def test_mismatched_prior_is_refused(tiny_dataset, untrained_prior, tmp_path):
    cfg = adapt_config(tiny_dataset, untrained_prior).task
    spec, _ = prepare(cfg)
    flame_dir = tiny_dataset / "flame"
    other = adapt_config(tiny_dataset, untrained_prior).task
    other.placement.uv_resolution = 24
    with pytest.raises(ConfigError, match=r"config\.json.*uv_resolution=32.*has 24"):
        prior_template(other, spec, flame_dir)   # refused before the spec is read
    other = adapt_config(tiny_dataset, untrained_prior).task
    other.avatar.init_scale_factor = 0.7
    with pytest.raises(ConfigError, match="init_scale_factor"):
        prior_template(other, spec, flame_dir)
    # Another head's UV chart (here: the texels' faces shuffled) is named with the fix.
    bad = shutil.copytree(untrained_prior, tmp_path / "other_chart")
    state = dict(np.load(bad / "generator.npz"))
    key = next(k for k in state if k.startswith("texel_face"))
    state[key] = np.roll(state[key], 1)
    np.savez(bad / "generator.npz", **state)
    cfg.prior.path = str(bad)
    with pytest.raises(ModelFileError, match=r"generator\.npz.*UV chart.*--flame"):
        prior_template(cfg, spec, flame_dir)
    cfg.prior.path, cfg.prior.sha256 = str(untrained_prior), "0" * 64
    with pytest.raises(ModelFileError, match="recorded sha256"):
        prior_template(cfg, spec, flame_dir)


def test_goal_check_reads_the_curves():
    scratch = {"steps": [0, 40, 80, 120, 160, 200], "psnr": [17.0, 24.0, 29.0, 30.0, 27.0, 26.5]}
    prior = {"steps": [0, 40, 80, 120, 160, 200], "psnr": [25.0, 26.6, 28.0, 29.5, 30.2, 29.0]}
    short = {"steps": [0, 40], "psnr": [25.0, 26.0]}
    goal = goal_check(scratch, prior, short)
    assert goal["prior_first_step_at_scratch_final"] == 40 and goal["met"]   # 40 <= 200 / 5
    assert not goal["met_by_short_run"]                                       # 26.0 < 26.5
    assert (goal["scratch_best_step"], goal["prior_first_step_at_scratch_best"]) == (120, 160)
    prior["psnr"] = [20.0, 22.0, 24.0, 26.0, 26.4, 26.5]
    assert goal_check(scratch, prior, short)["prior_first_step_at_scratch_final"] == 200
    assert not goal_check(scratch, prior, short)["met"]


def test_combine_summarises_the_goal_across_identities_and_refuses_other_json(tmp_path, capsys):
    steps = [0, 40, 80, 120, 160, 200]
    paths = []
    for name, prior_psnr in (("id_a", [25.0, 26.6, 28.0, 29.5, 30.2, 29.0]), ("id_b", [20.0, 22.0, 24.0, 26.0, 26.4, 26.5])):
        scratch = {"steps": steps, "psnr": [17.0, 24.0, 29.0, 30.0, 27.0, 26.5]}
        prior, short = {"steps": steps, "psnr": prior_psnr}, {"steps": [0, 40], "psnr": [25.0, 26.0]}
        report = {"data": f"/x/{name}", "refine_start": -1, "runs": {"scratch": scratch, "prior": prior, "prior_short": short},
                  "goal": goal_check(scratch, prior, short)}
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report))
    out = tmp_path / "fig.png"
    assert curves.main(["combine", *map(str, paths), "--out", str(out), "--report", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["met"], summary["of"]) == (1, 2)
    a, b = summary["identities"]
    assert (a["identity"], a["prior_fraction"], a["scratch_at_40"], a["prior_at_40"]) == ("id_a", 0.2, 24.0, 26.6)
    assert (b["prior_fraction"], b["met"]) == (1.0, False)
    assert out.stat().st_size > 0 and "goal met on 1 of 2" in capsys.readouterr().out
    (tmp_path / "other.json").write_text(json.dumps({"psnr": 30.0}))
    assert curves.main(["combine", str(tmp_path / "other.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other.json" in err and "not a curves report" in err


def test_seeds_average_per_step_and_combine_shades_their_range(tmp_path):
    steps = [0, 40, 80]
    seed0 = {"steps": steps, "psnr": [17.0, 25.0, 28.0], "seconds_train": 2.0, "prior": {}}
    seed1 = {"steps": steps, "psnr": [17.0, 27.0, 26.0], "seconds_train": 3.0, "prior": {}}
    run = over_seeds([seed0, seed1])
    assert run["psnr"] == [17.0, 26.0, 27.0] and run["psnr_per_seed"] == [seed0["psnr"], seed1["psnr"]]
    assert run["seconds_train"] == 5.0
    with pytest.raises(ValueError, match="different steps"):
        over_seeds([seed0, {**seed1, "steps": [0, 40, 120]}])
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("3") == (3,)
    for bad in ("0,0", "-1", "a,b", ""):
        with pytest.raises(Exception, match="integers"):
            parse_seeds(bad)
    report = {"data": "/x/id_a", "refine_start": -1, "seeds": [0, 1],
              "runs": {"scratch": run, "prior": run, "prior_short": over_seeds([seed0, seed1])},
              "goal": goal_check(run, run, run)}
    (tmp_path / "a.json").write_text(json.dumps(report))
    out = tmp_path / "fig.png"
    assert curves.main(["combine", str(tmp_path / "a.json"), "--out", str(out), "--report", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["identities"][0]["seeds"] == 2 and out.stat().st_size > 0


def test_curves_refuses_a_seed_override_beside_seeds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        curves.main(["--prior", "P", "--data", "D", "--out", "O", "--config.train.seed=3"])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_condition_template_takes_the_named_attributes_floors_scales_keeps_rotations():
    rng = np.random.default_rng(0)
    n = 50
    init = rng.normal(-1.0, 0.3, n).astype(np.float32)
    values = {"local_log_scales": init[:, None] + rng.normal(-1.0, 3.0, (n, 3)).astype(np.float32),
              "opacity_logits": rng.normal(0.0, 6.0, n).astype(np.float32),
              "local_quats": (rng.normal(size=(n, 4)) * rng.uniform(0.5, 30.0, (n, 1))).astype(np.float32),
              "local_means": rng.normal(0.0, 0.01, (n, 3)).astype(np.float32),
              "color_logits": rng.normal(size=(n, 3)).astype(np.float32)}
    prior_cfg = load_config("adapt_flashtalker").task.prior
    prior_cfg.attributes = ("local_means", "local_log_scales", "local_quats", "color_logits")
    prior_cfg.min_log_scale = -0.5
    out = condition_template(values, init, prior_cfg)
    assert sorted(out) == sorted(prior_cfg.attributes)   # opacity: the default initialisation
    floor = init[:, None] - 0.5
    scales, above = values["local_log_scales"], values["local_log_scales"] >= init[:, None] - 0.5
    np.testing.assert_array_equal(out["local_log_scales"][above], scales[above])
    np.testing.assert_allclose(out["local_log_scales"][~above], np.broadcast_to(floor, scales.shape)[~above],
                               rtol=0, atol=1e-6)
    quats = out["local_quats"]
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(quat_to_rotmat(quats)), np.asarray(quat_to_rotmat(values["local_quats"])),
                               atol=1e-5)   # the same rotations (the renderer normalises)
    for key in ("local_means", "color_logits"):
        np.testing.assert_array_equal(out[key], values[key])
    prior_cfg.attributes = ("local_means", "features")
    with pytest.raises(ConfigError, match=r"task\.prior\.attributes.*features"):
        condition_template(values, init, prior_cfg)
