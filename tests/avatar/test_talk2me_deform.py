"""Talk2Me's region-weighted deformer (avatar/deform_talk2me.py, configs/adapt_talk2me.py):
Eq. 2's weights, Eq. 5-7's encoding and the eye-aspect ratio against plain numpy
references; the untrained variant is the template; expression reaches only Gaussians with
w_exp > 0; the ablation presets change the parameters as declared; a short adaptation
lowers the loss, exports, reloads, evaluates (with the eye and blink keys) and speaks
(slow, like test_adapt.py: one adaptation's compile).
Tolerances: float32 arithmetic on values of order 1 (distances in metres ~0.1, angles up
to ~100 rad for S(i)), so 1e-5 relative / 2e-6 absolute, and 1e-4 absolute for the sines
of angles ~100 rad (float32 spacing there is ~8e-6)."""
import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.avatar import deform_talk2me as t2m
from flashtalker_jax.avatar.avatar import GaussianAvatar, drive_from_flame
from flashtalker_jax.avatar.binding import local_to_world
from flashtalker_jax.avatar.evaluate import blink_signals, eye_patches
from flashtalker_jax.avatar.renderer import neutral_landmarks
from flashtalker_jax.avatar.sampling import build_placement
from flashtalker_jax.config import load_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import to_ibug68
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.model import FlameParams

N_EXPR = 10


def deformer(n_expr=N_EXPR, dim=8, lpe=True, region_weights=True, ear=True, template=None, landmarks=None,
             seed=0):
    rng = np.random.default_rng(seed)
    template = rng.normal(scale=0.1, size=(12, 3)).astype(np.float32) if template is None else template
    landmarks = rng.normal(scale=0.1, size=(5, 3)).astype(np.float32) if landmarks is None else landmarks
    return t2m.RegionWeightedDeformer(
        n_expr=n_expr, dim=dim, hidden=16, layers=2, offset_scale=0.1, template=template,
        landmarks=landmarks, d_near=0.05, d_far=0.15, lpe=lpe, region_weights=region_weights, ear=ear,
        index_base=10000.0, coord_frequencies=3, rngs=nnx.Rngs(seed))


def test_region_weights_match_numpy():
    rng = np.random.default_rng(1)
    template = rng.normal(scale=0.1, size=(12, 3)).astype(np.float32)
    landmarks = rng.normal(scale=0.1, size=(5, 3)).astype(np.float32)
    faces = rng.integers(0, 12, size=(7, 3))
    face_ids = rng.integers(0, 7, size=40)
    bary = rng.dirichlet(np.ones(3), size=40).astype(np.float32)
    d = deformer(template=template, landmarks=landmarks)
    x, w = d.weights(jnp.asarray(face_ids), jnp.asarray(bary), jnp.asarray(faces))
    centre = landmarks.mean(0)
    radius = math.sqrt(np.mean([np.sum((p - centre) ** 2) for p in landmarks]))
    for n in range(40):
        point = sum(bary[n, k] * template[faces[face_ids[n], k]] for k in range(3))
        dist = min(math.dist(point, lm) for lm in landmarks)
        expected = 1.0 if dist <= 0.05 else 0.0 if dist >= 0.15 else (0.15 - dist) / 0.10
        np.testing.assert_allclose(w[n], expected, atol=2e-6)
        np.testing.assert_allclose(x[n], (point - centre) / radius, rtol=1e-5, atol=2e-6)
    assert 0 < np.sum((np.asarray(w) > 0) & (np.asarray(w) < 1))  # the ramp is exercised
    off = deformer(template=template, landmarks=landmarks, region_weights=False)
    np.testing.assert_array_equal(off.weights(jnp.asarray(face_ids), jnp.asarray(bary), jnp.asarray(faces))[1],
                                  np.ones(40))


def test_learnable_positional_encoding_matches_numpy():
    lpe = t2m.LearnablePositionalEncoding(6, 10000.0, nnx.Rngs(0))
    rng = np.random.default_rng(2)
    lpe.gamma[...] = jnp.asarray(rng.uniform(0.5, 1.5, 3), jnp.float32)
    lpe.phi[...] = jnp.asarray(rng.normal(size=3), jnp.float32)
    lpe.blend[...] = jnp.asarray(0.7)
    x = rng.normal(size=(101, 3)).astype(np.float32)
    table = rng.normal(size=(101, 6)).astype(np.float32)
    z = np.asarray(lpe(jnp.asarray(x), jnp.asarray(table)))
    gamma, phi = np.asarray(lpe.gamma[...], np.float64), np.asarray(lpe.phi[...], np.float64)
    kernel, bias = np.asarray(lpe.coords.kernel[...]), np.asarray(lpe.coords.bias[...])
    a = 1 / (1 + math.exp(-0.7))
    for i in range(101):
        bands = [10000.0 ** (-k / 3) for k in range(3)]
        s = ([math.sin(i * gamma[k] * bands[k] + phi[k]) for k in range(3)]
             + [math.cos(i * gamma[k] * bands[k] + phi[k]) for k in range(3)])
        expected = x[i] @ kernel + bias + a * table[i] + (1 - a) * np.asarray(s)
        np.testing.assert_allclose(z[i], expected, atol=1e-4)


def test_coordinate_sinusoids_match_numpy():
    x = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    got = np.asarray(t2m.coordinate_sinusoids(jnp.asarray(x), 2))
    for n in range(4):
        expected = list(x[n]) + [math.sin(2 ** k * math.pi * x[n, c]) for k in range(2) for c in range(3)] \
            + [math.cos(2 ** k * math.pi * x[n, c]) for k in range(2) for c in range(3)]
        np.testing.assert_allclose(got[n], expected, atol=2e-6)


@pytest.fixture(scope="module")
def head(tiny_identity):
    folder = tiny_identity / "flame"
    return load_flame_model(folder, with_teeth=True, n_expr=N_EXPR, n_shape=0), folder


@jax.jit
def _posed(model, params):
    """(vertices, landmarks, drive) of FLAME parameters; jitted: op-by-op dispatch of the
    FLAME forward compiles every op separately (~10x slower here)."""
    out = flame_forward(model, params)
    return out.vertices, out.landmarks, drive_from_flame(params, landmarks=out.landmarks)


def test_eye_aspect_ratio_matches_numpy_on_posed_landmarks(head):
    model = head[0]
    params = FlameParams.zeros(3, n_shape=0, n_expr=N_EXPR)
    expr = np.zeros((3, N_EXPR), np.float32)
    expr[1, 5] = 1.0       # the procedural basis's eye_close: lids shut
    params = params.replace(expr=jnp.asarray(expr),
                            rotation=jnp.array([[0, 0, 0], [0.1, -0.3, 0.05], [0.2, 0.4, 0]], jnp.float32),
                            translation=jnp.array([[0, 0, 0], [0.01, 0, 0.2], [0, -0.02, 0]], jnp.float32))
    _, landmarks, drive = _posed(model, params)
    got = np.asarray(drive["ear"])
    ibug = np.asarray(to_ibug68(landmarks), np.float64)
    for b in range(3):
        for e, first in enumerate((36, 42)):
            p = [ibug[b, first + k] for k in range(6)]
            expected = (math.dist(p[1], p[5]) + math.dist(p[2], p[4])) / (2 * math.dist(p[0], p[3]))
            np.testing.assert_allclose(got[b, e], expected, rtol=1e-5)
    assert got[1].max() < 0.05 < 0.2 < got[0].min()   # closed vs open lids


def avatar_config(**talk2me):
    cfg = dict(lpe=True, region_weights=True, ear=True, d_near=0.025, d_far=0.06, index_base=10000.0,
               coord_frequencies=3)
    cfg.update(talk2me)
    return ml_collections.ConfigDict(dict(
        capacity=0, init_scale_factor=0.5, init_opacity=0.9, feature_dim=8, feature_init_std=0.1,
        offset_hidden=16, offset_layers=2, offset_scale=0.1, deformer="region_weighted", talk2me=cfg,
        lr_scale=dict(local_means=1.0, local_log_scales=1.0, local_quats=1.0, opacity_logits=5.0,
                      color_logits=2.0, features=1.0)))


def small_avatar(head, cfg, audio_dim=0):
    model, folder = head
    vt, ft = load_uv_layout(folder)
    p = build_placement("uv", np.asarray(model.v_template), np.asarray(model.faces), vt, ft,
                        load_region_masks(folder), uv_resolution=16, teeth_per_face=1,
                        upper_masks=("upper_face", "eye_region"), lower_masks=("lower_face", "lips"))
    return GaussianAvatar(p, np.asarray(model.v_template), np.asarray(model.faces), N_EXPR, audio_dim, cfg,
                          nnx.Rngs(0), landmarks=neutral_landmarks(model))




def two_frames(model):
    """Two frames with different expression, jaw and (through the landmarks) EAR."""
    rng = np.random.default_rng(0)
    params = FlameParams.zeros(2, n_shape=0, n_expr=N_EXPR).replace(
        expr=jnp.asarray(rng.normal(size=(2, N_EXPR)), jnp.float32),
        jaw_pose=jnp.array([[0.1, 0, 0], [0.2, 0, 0]]))
    vertices, _, drive = _posed(model, params)
    return vertices, drive


@nnx.jit
def _gaussians(avatar, vertices, faces, drive):
    return avatar(vertices, faces, drive)


@pytest.fixture(scope="module")
def avatar(head):
    return small_avatar(head, avatar_config())


def test_untrained_region_weighted_avatar_is_the_template(head, avatar):
    model = head[0]
    verts, drive = two_frames(model)
    g = _gaussians(avatar, verts, model.faces, drive)
    log_scales = avatar.template("local_log_scales")
    means, scales, _ = local_to_world(verts, model.faces, avatar.face_ids[...], avatar.barycentrics[...],
                                      jnp.zeros_like(log_scales), log_scales, avatar.template("local_quats"))
    np.testing.assert_allclose(g.means, means, atol=1e-6)   # zero-initialised last layers
    np.testing.assert_allclose(g.scales, scales, rtol=1e-6)
    np.testing.assert_allclose(g.colors, jax.nn.sigmoid(avatar.template("color_logits"))[None].repeat(2, 0),
                               rtol=1e-6)


def test_expression_moves_only_gaussians_near_landmarks(head, avatar):
    model = head[0]
    avatar = nnx.clone(avatar)
    key = jax.random.key(1)
    for branch in (avatar.deformer.expression, avatar.deformer.pose):
        key, sub = jax.random.split(key)
        branch.rest.last.kernel[...] = 0.1 * jax.random.normal(sub, branch.rest.last.kernel.shape)
    verts, drive = two_frames(model)
    # Same head pose in both frames, different expression / jaw / EAR.
    g = _gaussians(avatar, jnp.broadcast_to(verts[:1], verts.shape), model.faces, drive)
    moved = np.abs(np.asarray(g.local_means[0] - g.local_means[1])).max(-1)
    _, w_exp = avatar.deformer.weights(avatar.face_ids[...], avatar.barycentrics[...], model.faces)
    w_exp = np.asarray(w_exp)
    assert (w_exp == 0).sum() > 50 and (w_exp == 1).sum() > 50
    assert moved[w_exp == 0].max() == 0.0 and moved[w_exp == 1].min() > 0.0


def test_ablation_presets_change_the_parameters_as_declared(head):
    from flashtalker_jax.train.state import key_path_str

    def params(preset):
        cfg = load_config(f"adapt_talk2me.py:{preset}").task.avatar
        cfg.update(feature_dim=8, offset_hidden=16)
        d = small_avatar(head, cfg).deformer
        leaves = jax.tree_util.tree_flatten_with_path(nnx.state(d, nnx.Param))[0]
        return d, {key_path_str(p): v.shape for p, v in leaves}

    full, full_params = params("cpu")
    assert {"encoding/gamma/value", "encoding/phi/value", "encoding/blend/value"} <= set(full_params)
    assert full_params["expression/frame/kernel/value"] == (N_EXPR + 3 + 6 + 2, 16)
    no_lpe, no_lpe_params = params("cpu+no_lpe")
    assert not any(k.startswith(("encoding/gamma", "encoding/coords")) for k in no_lpe_params)
    assert no_lpe_params["encoding/proj/kernel/value"] == (3 + 6 * 6, 8)
    no_ear, no_ear_params = params("cpu+no_ear")
    assert no_ear_params["expression/frame/kernel/value"] == (N_EXPR + 3 + 6, 16)
    no_rw, no_rw_params = params("cpu+no_region_weights")
    assert no_rw_params == full_params and not no_rw.region_weights and full.region_weights
    with pytest.raises(ConfigError, match="unknown preset 'no_eyes'"):
        load_config("adapt_talk2me.py:cpu+no_eyes")
    with pytest.raises(ConfigError, match="use_audio=False"):
        small_avatar(head, avatar_config(), audio_dim=8)


STEPS = 60
OVERRIDES = ["--config.task.resolution=64", "--config.task.placement.uv_resolution=24",
             "--config.task.placement.teeth_per_face=1", "--config.task.avatar.feature_dim=8",
             "--config.task.avatar.offset_hidden=16", "--config.task.render.backend=tiles",
             "--config.task.render.per_tile=512", "--config.task.refine_start=-1",
             "--config.task.eval_max_frames=6", f"--config.train.steps={STEPS}", "--config.train.log_every=20",
             f"--config.train.checkpoint_every={STEPS}", "--config.train.async_checkpoint=False",
             "--config.optim.warmup_steps=10", "--config.optim.lr=1e-2"]


@pytest.fixture(scope="module")
def adapted(tiny_identity, tmp_path_factory):
    from flashtalker_jax.cli.main import main

    run = tmp_path_factory.mktemp("talk2me") / "run"
    assert main(["adapt", "--config", "adapt_talk2me.py", "--data", str(tiny_identity), "--out", str(run),
                 *OVERRIDES]) == 0
    return run


@pytest.mark.slow
def test_short_adaptation_lowers_the_loss_and_trains_the_deformer(adapted):
    from flashtalker_jax.avatar.renderer import load_renderer

    records = [json.loads(line) for line in (adapted / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == STEPS // 20 and losses[-1] < 0.7 * losses[0], losses
    renderer, task_cfg = load_renderer(adapted)
    assert task_cfg.avatar.deformer == "region_weighted"
    deformer = renderer.model.avatar.deformer
    assert isinstance(deformer, t2m.RegionWeightedDeformer)
    for branch in (deformer.expression, deformer.pose):
        assert np.abs(np.asarray(branch.rest.last.kernel[...])).max() > 0   # trained away from zero


@pytest.mark.slow
def test_eval_reports_eye_and_blink_keys(adapted, tiny_identity, tmp_path):
    from flashtalker_jax.cli.main import main

    report = tmp_path / "eval.json"
    assert main(["eval-avatar", "--avatar", str(adapted), "--data", str(tiny_identity),
                 "--report", str(report)]) == 0
    result = json.loads(report.read_text())
    for key in ("psnr", "ssim", "l1", "mouth_psnr", "eye_psnr", "blink_gt_range", "blink_render_range"):
        assert np.isfinite(result[key]), key
    assert "blink_corr" in result and result["frames"] == 6
    assert {"eye_psnr", "blink_gt", "blink_render"} <= set(result["per_frame"][0])


def test_eye_patches_sample_a_linear_image_exactly():
    # Bilinear interpolation reproduces a linear function of the pixel centres exactly.
    rows, cols = np.mgrid[0:32, 0:32]
    image = np.stack([0.01 * (cols + 0.5), 0.02 * (rows + 0.5), 0.3 + 0.005 * (cols + rows + 1.0)], -1)
    points = np.zeros((51, 2))
    points[list(t2m.EYES[0])] = [[8, 12], [9, 11], [11, 11], [12.5, 12.5], [11, 13], [9, 13]]
    points[list(t2m.EYES[1])] = [[18, 13], [19, 12], [21, 12], [23, 14], [21, 14], [19, 14]]
    patches = eye_patches(image, points, (4, 6))
    for e, eye in enumerate(t2m.EYES):
        p1, p4 = points[eye[0]], points[eye[3]]
        axis = p4 - p1
        for r, v in enumerate(np.linspace(-0.4, 0.4, 4)):
            for c, u in enumerate(np.linspace(-0.75, 0.75, 6)):
                x, y = 0.5 * (p1 + p4) + u * axis + v * np.array([-axis[1], axis[0]])
                np.testing.assert_allclose(patches[e, r, c], [0.01 * x, 0.02 * y, 0.3 + 0.005 * (x + y)],
                                           atol=1e-12)


def test_blink_signals_correlate_a_shared_blink():
    rng = np.random.default_rng(4)
    open_eye = rng.uniform(size=(4, 8, 3))
    closed = np.full((4, 8, 3), 0.8)
    shut = np.array([0, 0, 0.3, 1, 0.3, 0, 0, 0, 0, 0])
    truth = np.stack([(1 - s) * open_eye + s * closed for s in shut])
    render = truth + 0.01 * rng.normal(size=truth.shape)
    blink = blink_signals(render, truth)
    assert blink["blink_corr"] > 0.95 and blink["blink_gt_range"] > 0.1
    np.testing.assert_allclose(blink["gt"], np.mean(np.abs(truth - np.median(truth, 0)), axis=(1, 2, 3)))
    flat = blink_signals(render, np.repeat(truth[:1], 10, 0))
    assert np.isnan(flat["blink_corr"]) and flat["blink_gt_range"] == 0.0


@pytest.mark.slow
def test_speak_renders_the_talk2me_avatar(adapted, tmp_path):
    import soundfile

    from flashtalker_jax.cli.main import main

    t = np.arange(8000) / 16000
    soundfile.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    report = tmp_path / "r.json"
    assert main(["speak", "--avatar", str(adapted), "--audio", str(tmp_path / "a.wav"),
                 "--out", str(tmp_path / "o.mp4"), "--report", str(report), "--quiet"]) == 0
    assert (tmp_path / "o.mp4").stat().st_size > 0
    assert json.loads(report.read_text())["frames"] > 0
