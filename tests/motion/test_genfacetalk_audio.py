"""GenFaceTalk's audio branch (motion/genfacetalk_audio.py, task "genfacetalk_audio"):
shapes and causality, padding read as the convolution's own, determinism, a short
training on a tiny procedural set, heads taken exactly from a motion encoder folder (and
kept frozen), another FLAME model refused, and the run through speak's motion_from_run
and eval-a2e."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.cli.main import main
from flashtalker_jax.config import load_config
from flashtalker_jax.encoder.folder import write_encoder
from flashtalker_jax.encoder.model import head_codes, motion_widths
from flashtalker_jax.encoder.task import make_encoder
from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.motion import tasks
from flashtalker_jax.motion.genfacetalk_audio import (AUDIO_KEYS, AudioBranchDims, GenFaceTalkAudio,
                                                      check_streaming, motion_columns, resolve_heads)
from flashtalker_jax.motion.evaluate import training_mean_motion
from flashtalker_jax.motion.layers import jit_apply, jit_init
from motion_helpers import assert_init_deterministic

TINY = ["--config", "genfacetalk_audio.py:tiny", "--config.task.model.window=12",
        "--config.task.model.period=6", "--config.task.model.dilations=(1,2)",
        "--config.task.batch_size=4", "--config.task.min_frames=6", "--config.train.log_every=1",
        "--config.task.augment.prob=0"]


def tiny_dims(**kw):
    return AudioBranchDims(**{**dict(n_expr=4, head_n_expr=6, audio_dim=5, channels=8, dilations=(1, 2),
                                     feature=12, hidden=10), **kw})


def inputs(seed=0, frames=9):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(2, 2 * frames, 5)), jnp.float32), jnp.ones((2, frames), bool)


@pytest.fixture(scope="module")
def tiny_apply():
    dims = tiny_dims()
    return jit_apply(jit_init(lambda rngs: GenFaceTalkAudio(dims, rngs), jax.random.key(0)))


def test_shapes_causality_and_padding(tiny_apply):
    audio, mask = inputs()
    out = tiny_apply(audio, mask)
    assert out.shape == (2, 9, 7) and bool(jnp.all(jnp.isfinite(out)))
    assert tiny_dims().receptive_field == 7
    # Frames 0-4 (audio rows 0-9) do not depend on later audio: streamed windows rely on it.
    later = tiny_apply(audio.at[:, 10:].add(3.0), mask)
    np.testing.assert_allclose(out[:, :5], later[:, :5], atol=1e-6)
    assert not np.allclose(out[:, 5:], later[:, 5:], atol=1e-4)
    # Frame t reads frames t-6..t only (receptive field 7): frame 8 ignores frame 1's audio.
    early = tiny_apply(audio.at[:, 2:4].add(3.0), mask)
    np.testing.assert_allclose(out[:, 8], early[:, 8], atol=1e-6)
    assert not np.allclose(out[:, 7], early[:, 7], atol=1e-4)
    # Masked frames before the clip (an inference window's warm-up at the start) read as the
    # convolution's zero padding: the real frames equal the model run on them alone.
    padded_audio = jnp.concatenate([jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 5)), jnp.float32),
                                    audio], 1)
    padded_mask = jnp.concatenate([jnp.zeros((2, 3), bool), mask], 1)
    np.testing.assert_allclose(tiny_apply(padded_audio, padded_mask)[:, 3:], out, atol=1e-5)


def test_outputs_are_the_heads_motion_columns():
    dims = tiny_dims()
    model = jit_init(lambda rngs: GenFaceTalkAudio(dims, rngs), jax.random.key(0))
    audio, mask = inputs()
    codes = model.codes(audio, mask)
    widths = motion_widths(6)
    assert codes.shape == (2, 9, widths["expr"] + widths["neck_jaw"])
    # [expr[:4] | jaw]: jaw = the last 3 of the neck/jaw head (after 6 expr + 3 neck columns).
    np.testing.assert_array_equal(motion_columns(4, 6), [0, 1, 2, 3, 9, 10, 11])
    np.testing.assert_array_equal(model(audio, mask), jnp.concatenate([codes[..., :4], codes[..., 9:12]], -1))
    with pytest.raises(ConfigError, match="head_n_expr"):
        AudioBranchDims.from_config(_model_cfg(head_n_expr=3), 8, 5)


def _model_cfg(**kw):
    model = load_config("genfacetalk_audio.py:tiny").task.model
    model.update(kw)
    return model


def test_determinism(tiny_apply):
    assert_init_deterministic(GenFaceTalkAudio, tiny_dims())
    np.testing.assert_array_equal(tiny_apply(*inputs(1)), tiny_apply(*inputs(1)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny procedural set, a motion encoder folder of its FLAME model (random weights,
    CodeStats of the set's own scale: the heads' parity does not need a trained encoder),
    and one of another FLAME model."""
    root = tmp_path_factory.mktemp("gft")
    assert main(["synth-a2e-data", "--out", str(root / "ds"), "--identities", "2", "--seconds", "4",
                 "--config.split.val_sentences=1"]) == 0
    cfg = load_config("motion_encoder.py:quick").task
    channels = sum(motion_widths(cfg.n_expr).values())
    rng = np.random.default_rng(0)
    stats = {"motion_mean": rng.normal(size=channels) * 0.1, "motion_std": rng.uniform(0.05, 0.5, channels),
             "shape_mean": np.zeros(cfg.n_shape), "shape_std": np.ones(cfg.n_shape)}
    encoder = make_encoder(cfg, stats, nnx.Rngs(7))
    flame_file = root / "ds" / "flame" / "generic_model.pkl"
    write_encoder(root / "enc", encoder, cfg, 0, flame_file)
    other = root / "other_flame.pkl"
    other.write_bytes(flame_file.read_bytes() + b"\0")   # hashed only, never loaded
    write_encoder(root / "enc_other", encoder, cfg, 0, other)
    return root, encoder


@pytest.fixture(scope="module")
def runs(data):
    """gft120: from scratch, 120 steps; frozen10: heads from the encoder, frozen, 10 steps."""
    root, _ = data
    assert main(["pretrain-a2e", "--data", str(root / "ds"), "--out", str(root / "gft120"), *TINY,
                 "--config.train.steps=120", "--config.train.checkpoint_every=120"]) == 0
    assert main(["pretrain-a2e", "--data", str(root / "ds"), "--out", str(root / "frozen10"), *TINY,
                 f"--config.task.heads_from={root / 'enc'}", "--config.task.train_heads=False",
                 "--config.train.steps=10", "--config.train.checkpoint_every=10"]) == 0
    return root


def flat_params(module) -> dict:
    """{leaf path: array} of a module's parameters, the names model.npz uses."""
    from flashtalker_jax.train.state import key_path_str

    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(module, nnx.Param))[0]
    return {key_path_str(p): np.asarray(v) for p, v in leaves}


def tiny_task(root, *overrides):
    config = load_config("genfacetalk_audio.py:tiny", [o.removeprefix("--config.") for o in TINY[2:] + list(overrides)])
    config.task.dataset = str(root / "ds")
    return config.task


def build(root, *overrides):
    return tasks.build(tiny_task(root, *overrides))


def test_training_lowers_the_code_loss(runs):
    motion = build(runs)
    crops = motion.task.make_data(0, 1)
    batches = [next(crops) for _ in range(4)]
    loss = jax.jit(lambda model, batch: motion.task.loss_fn(model, batch, jax.random.key(0))[1]["code"])
    loss_of = lambda model: np.mean([float(loss(model, b)) for b in batches])
    before = loss_of(jit_init(motion.task.make_model, jax.random.key(0)))
    after = loss_of(tasks.load_motion_model(runs / "gft120").model)
    assert after < 0.6 * before, (before, after)

    # With loss.vertices the lip term (losses.vertex_loss on FLAME 'lips', mm^2) adds to the code loss.
    with_lips = build(runs, "task.loss.vertices=0.01")
    total, metrics = with_lips.task.loss_fn(tasks.load_motion_model(runs / "gft120").model, batches[0], None)
    assert float(metrics["lip_mm2"]) > 0
    np.testing.assert_allclose(float(total), 5.0 * float(metrics["code"]) + 0.01 * float(metrics["lip_mm2"]),
                               rtol=1e-5)


def test_heads_from_an_encoder_are_its_heads_exactly(data, runs):
    root, encoder = data
    motion = build(root, f"task.heads_from={root / 'enc'}")
    model = jit_init(motion.task.make_model, jax.random.key(0))
    assert model.dims.feature == 64 and model.dims.head_n_expr == 50
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 64)), jnp.float32)
    np.testing.assert_array_equal(head_codes(model.heads, AUDIO_KEYS, x), head_codes(encoder.heads, AUDIO_KEYS, x))
    # The run's motion units are the encoder's CodeStats of [expr[:8] | jaw] (columns 0-7, 53-55).
    columns = np.r_[0:8, 53:56]
    np.testing.assert_array_equal(motion.motion_norm.mean, np.asarray(encoder.motion_mean[...])[columns])
    np.testing.assert_array_equal(motion.motion_norm.std, np.asarray(encoder.motion_std[...])[columns])
    # So a frame's raw [expr | jaw] is what the encoder's own denormalise gives for that x_D.
    parts, _ = encoder.denormalise(jnp.concatenate([encoder.heads[k](x) for k in ("expr", "neck_jaw", "eyes_pose",
                                                                                   "camera")], -1), jnp.zeros((3, 100)))
    raw = motion.motion_norm.denormalise(np.asarray(head_codes(model.heads, AUDIO_KEYS, x))[:, motion_columns(8, 50)])
    np.testing.assert_allclose(raw, np.concatenate([parts["expr"][:, :8], parts["jaw_pose"]], -1), rtol=1e-6, atol=1e-7)

    # Frozen heads: 10 steps leave them bit-identical while E_audio trains.
    saved = tasks.read_params(runs / "frozen10")
    heads = {k: v for k, v in saved.items() if k.startswith("heads/")}
    assert heads and all(np.array_equal(v, flat_params(encoder)[k]) for k, v in heads.items())
    steps = [json.loads(line) for line in (runs / "frozen10" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 10 and all(r["grad_norm"] > 0 for r in steps)   # E_audio's gradients
    meta = json.loads((runs / "frozen10" / "model.json").read_text())
    assert meta["task"]["heads_from"] == str((root / "enc").resolve()) and meta["task"]["model"]["head_n_expr"] == 50


def test_another_flame_model_or_frozen_random_heads_are_refused(data):
    root, _ = data
    flame_file = root / "ds" / "flame" / "generic_model.pkl"
    with pytest.raises(ModelFileError, match="generic_model.pkl.*not the FLAME model"):
        resolve_heads(tiny_task(root, f"task.heads_from={root / 'enc_other'}"), flame_file)
    with pytest.raises(ConfigError, match="train_heads"):
        resolve_heads(tiny_task(root, "task.train_heads=False"), flame_file)
    task = tiny_task(root, "task.model.dilations=(1,2,4)")
    with pytest.raises(ConfigError, match="E_audio sees 15 frames"):
        check_streaming(task, AudioBranchDims.from_config(task.model, 8, 81))


def test_trained_run_drives_speak_and_eval_a2e(runs):
    from flashtalker_jax.data.vhap import read_vhap_index
    from flashtalker_jax.motion.inference import Predictor
    from flashtalker_jax.pipeline.motion import motion_from_run

    run, ds = runs / "gft120", runs / "ds"
    loaded = tasks.load_motion_model(run)
    assert loaded.kind == "genfacetalk_audio" and loaded.templates is None
    ident = tasks.load_identities(loaded.task, loaded.identities)[1]
    audio = ident.splits["test"][0].audio
    motion = Predictor(loaded)(audio, ident.index)
    assert motion.shape == (audio.shape[0] // 2, 11)

    poses = {k: np.zeros((5, 6 if k == "eyes_pose" else 3), np.float32)
             for k in ("rotation", "neck_pose", "eyes_pose", "translation")}
    frames = len(read_vhap_index(ds / "id001").timesteps)
    chunks = list(motion_from_run(run, poses, 25.0, n_expr=10, style="id001")(ds / "id001" / "audio.wav", frames))
    expr = np.concatenate([c["expr"] for c in chunks])
    jaw = np.concatenate([c["jaw_pose"] for c in chunks])
    assert expr.shape == (frames, 10) and jaw.shape == (frames, 3) and np.all(expr[:, 8:] == 0)
    assert np.std(jaw[:, 0]) > 0

    report_path = runs / "report.json"
    assert main(["eval-a2e", "--a2e", str(run), "--data", str(ds / "id001"), "--report", str(report_path)]) == 0
    metrics = json.loads(report_path.read_text())["identities"]["id001"]["metrics"]
    assert set(metrics) == {"genfacetalk_audio", "gt_shift_2", "static_mean_face"}
    ours, static = metrics["genfacetalk_audio"], metrics["static_mean_face"]
    assert ours["lve_max_l2_mm"] < static["lve_max_l2_mm"] and ours["opening_pearson"] > 0.3

    # The static mean face is the data's train-split mean, whatever the model's units: the
    # heads_from run normalises with the encoder's statistics, yet its static row is the same.
    frozen_report = runs / "report_frozen.json"
    assert main(["eval-a2e", "--a2e", str(runs / "frozen10"), "--data", str(ds / "id001"),
                 "--report", str(frozen_report)]) == 0
    frozen_static = json.loads(frozen_report.read_text())["identities"]["id001"]["metrics"]["static_mean_face"]
    assert frozen_static == static
    assert ident.name == "id001"
    train = np.concatenate([s.motion for s in ident.splits["train"]])
    np.testing.assert_array_equal(training_mean_motion([ident]), train.mean(0).astype(np.float32))
    assert not np.allclose(training_mean_motion([ident]), tasks.load_motion_model(runs / "frozen10").motion_norm.mean)


def test_adapt_a2e_keeps_the_audio_encoder(runs, tmp_path):
    """adapt-a2e fine-tunes a run on one identity with E_audio frozen (configs/adapt_a2e.py
    task.freeze), the heads free."""
    from flashtalker_jax.motion.tasks import read_params

    out = tmp_path / "adapted"
    assert main(["adapt-a2e", "--a2e", str(runs / "gft120"), "--data", str(runs / "ds" / "id001"), "--out", str(out),
                 "--config.train.steps=4", "--config.train.checkpoint_every=4", "--config.early_stop.eval_every=4",
                 "--config.early_stop.criterion=loss", "--config.early_stop.min_delta=-1e9",   # keep step 4
                 "--config.optim.lr=1e-2"]) == 0
    before, after = read_params(runs / "gft120"), read_params(out)
    encoder = [k for k in before if k.startswith("audio_encoder")]
    assert encoder and all(np.array_equal(before[k], after[k]) for k in encoder)
    assert any(not np.array_equal(before[k], after[k]) for k in before if k.startswith("heads"))
