"""Talk2Me's Expression Generator (motion/talk2me_eg.py, task "talk2me_eg"): shapes and
causality, the eye-weighted L1 against a numpy loop, the eye coefficients of the procedural
head, a short training on a tiny procedural set, and the trained run through the paths
speak (pipeline/motion.motion_from_run) and eval-a2e use."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.cli.main import main
from flashtalker_jax.config import load_config
from flashtalker_jax.data.vhap import read_vhap_index
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.motion import tasks
from flashtalker_jax.motion.layers import jit_apply, jit_init
from flashtalker_jax.motion.talk2me_eg import (EGDims, ExpressionGenerator, eye_coefficients,
                                               eye_weighted_l1, eye_weights)
from motion_helpers import assert_init_deterministic

TINY = ["--config", "talk2me_eg.py:tiny", "--config.task.model.d_model=16", "--config.task.model.window=12",
        "--config.task.model.period=4", "--config.task.model.emotion_frames=4",
        "--config.task.batch_size=4", "--config.task.min_frames=6", "--config.train.log_every=1",
        "--config.optim.lr=3e-3", "--config.task.augment.prob=0"]


def tiny_dims():
    return EGDims(motion_dim=7, audio_dim=5, reference_dim=7, eye_ids=(1, 2), d_model=16, num_heads=2,
                  fusion_rank=3, audio_context=2, emotion_frames=4, encoder_layers=1, period=4)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(2, 18, 5)), jnp.float32), jnp.asarray(rng.normal(size=(2, 7)), jnp.float32),
            jnp.ones((2, 9), bool))


@pytest.fixture(scope="module")
def tiny_apply():
    """The tiny model's jitted call (one compilation per input shape for the whole module)."""
    dims = tiny_dims()
    return jit_apply(jit_init(lambda rngs: ExpressionGenerator(dims, rngs), jax.random.key(0)))


def test_shapes_causality_and_style(tiny_apply):
    apply = tiny_apply
    audio, reference, mask = inputs()
    out = apply(audio, reference, mask)
    assert out.shape == (2, 9, 7) and bool(jnp.all(jnp.isfinite(out)))
    # Frames 0-4 (audio rows 0-9) must not depend on later audio: the streamed windows rely on it.
    later = apply(audio.at[:, 10:].add(3.0), reference, mask)
    np.testing.assert_allclose(out[:, :5], later[:, :5], atol=1e-5)
    assert not np.allclose(out[:, 5:], later[:, 5:], atol=1e-4)
    assert not np.allclose(apply(audio, reference + 1.0, mask), out, atol=1e-4)
    # Any length with the same parameters.
    assert apply(audio[:, :6], reference, mask[:, :3]).shape == (2, 3, 7)


def test_determinism(tiny_apply):
    assert_init_deterministic(ExpressionGenerator, tiny_dims())
    np.testing.assert_array_equal(tiny_apply(*inputs(1)), tiny_apply(*inputs(1)))


def test_eye_weighted_l1_matches_a_numpy_loop(seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(2, 2, 5, 6)).astype(np.float32)
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    w = eye_weights(6, (1, 4), 3.0)
    np.testing.assert_array_equal(w, [1, 3, 1, 1, 3, 1])
    total, frames = 0.0, 0
    for i in range(2):
        for t in range(5):
            if mask[i, t]:
                total += sum(w[k] * abs(pred[i, t, k] - target[i, t, k]) for k in range(6)) / w.sum()
                frames += 1
    got = float(eye_weighted_l1(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask), jnp.asarray(w)))
    np.testing.assert_allclose(got, total / frames, rtol=1e-5)
    # The same error on an eye coefficient costs eye_weight times what it costs elsewhere.
    zero = np.zeros((1, 1, 6), np.float32)
    cost = lambda k: float(eye_weighted_l1(jnp.asarray(zero), jnp.asarray(zero).at[..., k].set(0.5),
                                           jnp.ones((1, 1), bool), jnp.asarray(w)))
    np.testing.assert_allclose(cost(4), 3.0 * cost(0), rtol=1e-6)


def test_eye_coefficients_by_displacement_share():
    dirs = np.zeros((4, 3, 3))                  # eye vertices: {0, 1}
    dirs[0, 0, 0] = dirs[3, 1, 0] = 1.0         # share 1 / 2
    dirs[1, 2, 1] = 2.0                         # share 1
    dirs[0, 0, 2], dirs[2, 0, 2] = 1.0, 1.5     # share 1 / 3.25
    assert eye_coefficients(dirs, np.array([0, 1]), 0.5) == (0, 1)
    assert eye_coefficients(dirs, np.array([0, 1]), 0.2) == (0, 1, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny procedural set, and the EG trained on it for 120 steps (eg120)."""
    root = tmp_path_factory.mktemp("eg")
    assert main(["synth-a2e-data", "--out", str(root / "ds"), "--identities", "2", "--seconds", "4",
                 "--config.split.val_sentences=1"]) == 0
    assert main(["pretrain-a2e", "--data", str(root / "ds"), "--out", str(root / "eg120"), *TINY,
                 "--config.train.steps=120", "--config.train.checkpoint_every=120"]) == 0
    return root


def test_eye_ids_of_the_procedural_head_are_saved(runs):
    # eye_close (5) and brow_lower (6) put most of their displacement on 'eye_region'.
    meta = json.loads((runs / "eg120" / "model.json").read_text())
    assert meta["kind"] == "talk2me_eg" and meta["task"]["model"]["eye_ids"] == [5, 6]
    assert meta["template_dim"] == 11 and np.load(runs / "eg120" / "templates.npy").shape == (3, 11)


def test_training_lowers_the_loss_on_fixed_windows(runs):
    config = load_config("talk2me_eg.py:tiny", TINY[2:])
    config.task.dataset = str(runs / "ds")
    motion = tasks.build(config.task)
    crops = motion.task.make_data(0, 1)
    batches = [next(crops) for _ in range(4)]

    loss = jax.jit(lambda model, batch: motion.task.loss_fn(model, batch, jax.random.key(0))[0])
    loss_of = lambda model: np.mean([float(loss(model, b)) for b in batches])
    before = loss_of(jit_init(motion.task.make_model, jax.random.key(0)))
    after = loss_of(tasks.load_motion_model(runs / "eg120").model)
    assert after < 0.7 * before, (before, after)


def test_trained_run_drives_speak_and_eval_a2e(runs):
    from flashtalker_jax.motion.inference import Predictor
    from flashtalker_jax.pipeline.motion import motion_from_run

    run, ds = runs / "eg120", runs / "ds"
    loaded = tasks.load_motion_model(run)
    predictor = Predictor(loaded)
    ident = tasks.load_identities(loaded.task, loaded.identities)[1]
    audio = ident.splits["test"][0].audio
    # speak passes no template: the run's own reference frame of the style row is used.
    own = tasks.reference_frame(ident, loaded.motion_norm)
    np.testing.assert_allclose(loaded.templates[ident.index], own, atol=1e-6)
    np.testing.assert_array_equal(predictor(audio, ident.index), predictor(audio, ident.index, template=own))
    assert predictor(audio, ident.index).shape == (audio.shape[0] // 2, 11)

    poses = {k: np.zeros((5, 6 if k == "eyes_pose" else 3), np.float32)
             for k in ("rotation", "neck_pose", "eyes_pose", "translation")}
    frames = len(read_vhap_index(ds / "id001").timesteps)
    motion_fn = motion_from_run(run, poses, 25.0, n_expr=10, style="id001")
    expr = np.concatenate([c["expr"] for c in motion_fn(ds / "id001" / "audio.wav", frames)])
    assert expr.shape == (frames, 10) and np.all(expr[:, 8:] == 0) and np.std(expr[:, 0]) > 0

    report_path = runs / "report.json"
    assert main(["eval-a2e", "--a2e", str(run), "--data", str(ds / "id001"), "--report", str(report_path)]) == 0
    metrics = json.loads(report_path.read_text())["identities"]["id001"]["metrics"]
    assert set(metrics) == {"talk2me_eg", "gt_shift_2", "static_mean_face"}
    eg, static = metrics["talk2me_eg"], metrics["static_mean_face"]
    print(eg, static)
    assert eg["lve_max_l2_mm"] < static["lve_max_l2_mm"] and eg["opening_pearson"] > 0.3
    assert eg["eye_opening_error_mm"] >= 0 and eg["blinks_per_min"] >= 0


def test_given_eye_ids_must_be_expression_coefficients():
    task = load_config("talk2me_eg.py:tiny").task
    task.model.eye_ids = (2, 8)   # 8 = the first jaw channel with n_expr 8
    with pytest.raises(ConfigError, match="eye_ids"):
        tasks.resolve_eye_ids(task, flame=None)
    task.model.eye_ids = (2, 5)
    tasks.resolve_eye_ids(task, flame=None)
    assert task.model.eye_ids == (2, 5)
