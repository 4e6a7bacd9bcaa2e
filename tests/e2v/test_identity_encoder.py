"""GenFaceTalk's identity learning (task.generator.kind="genfacetalk", e2v/identity_encoder.py)
as a drop-in for GGTalker's UV U-Net: the same map, equal to it untrained (both are the
projective texture), trainable on the tiny set, through a prior folder and `oneshot`."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.config import load_config
from flashtalker_jax.e2v.generator import IdentityGaussianGenerator, bilinear
from flashtalker_jax.e2v.identity_encoder import GenFaceTalkIdentityGenerator, TokenMix, level_coordinates
from flashtalker_jax.e2v.prior import load_generator, read_prior, write_prior
from flashtalker_jax.e2v.task import (build_geometry, load_identities, make_generator, make_task, predict,
                                      resolve_flame_dir)
from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.train.state import merge_model
from flashtalker_jax.train.trainer import fit

STEPS = 6


def gft_config(dataset, *overrides):
    return load_config("pretrain_e2v:quick+genfacetalk", [f"task.dataset={dataset}", *overrides])


@pytest.fixture(scope="module")
def setup(tiny_dataset):
    """(genfacetalk task config, geometry, a batch of 2 real source frames + their shapes)."""
    cfg = gft_config(tiny_dataset).task
    geometry = build_geometry(cfg, resolve_flame_dir(cfg, tiny_dataset))
    frames = load_identities(cfg)[1]
    rows = np.array([0, len(frames["identity"]) - 1])      # one frame of each identity
    frame = {k: jnp.asarray(v[rows]) for k, v in frames.items() if k not in ("shape", "identity")}
    return cfg, geometry, frame, jnp.asarray(frames["shape"][rows])


def _both(geometry, background):
    """jit(a, b, frame, shape) -> ((map, template values) of a, of b): one compile instead of
    two eager runs of the FLAME forward and both generators."""
    return nnx.jit(lambda a, b, frame, shape: (predict(a, geometry, frame, shape, background),
                                                predict(b, geometry, frame, shape, background)))


def test_same_map_as_the_uv_generator_untrained(tiny_dataset, setup):
    """Shape and structure equal GGTalker's; untrained, every channel equals it: zero
    residuals on the same colour skip (the projective texture). Both sample the same image
    at the same pixels with the same bilinear, so only float rounding may differ (1e-5 on
    logits up to ~4)."""
    _, geometry, frame, shape = setup
    cfg = gft_config(tiny_dataset, "task.generator.token_rank=4").task   # TokenMix starts as the identity
    uv_cfg = load_config("pretrain_e2v:quick", [f"task.dataset={tiny_dataset}"]).task
    ours, theirs = make_generator(cfg, geometry, nnx.Rngs(0)), make_generator(uv_cfg, geometry, nnx.Rngs(0))
    assert ours.mix is not None
    assert isinstance(ours, GenFaceTalkIdentityGenerator) and isinstance(theirs, IdentityGaussianGenerator)
    background = tuple(cfg.background)
    (map_a, values_a), (map_b, values_b) = _both(geometry, background)(ours, theirs, frame, shape)
    assert map_a.shape == map_b.shape == (2, cfg.generator.map_resolution, cfg.generator.map_resolution, 14)
    np.testing.assert_allclose(np.asarray(map_a), np.asarray(map_b), atol=1e-5)
    assert values_a.keys() == values_b.keys()
    for name in values_a:
        assert values_a[name].shape == values_b[name].shape, name
    # the texture is the source's: covered texels are not all one colour
    assert float(jnp.std(values_a["color_logits"])) > 0.1
    assert ours.texel_face.shape == theirs.texel_face.shape and ours.resolution == theirs.resolution


def test_level_coordinates_follow_the_strided_convolutions():
    """A centre-tap 3x3 stride-2 SAME convolution of a linear ramp f(x) = x (pixel centres
    at c + 0.5) keeps the ramp at its cells' centres, so bilinear reads at level_coordinates
    must give back x exactly (interior points, two levels deep)."""
    side = 32
    ramp = jnp.broadcast_to((jnp.arange(side) + 0.5)[None, None, :, None], (1, side, side, 1))
    kernel = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)
    conv = lambda x: jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME",   # noqa: E731
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    maps = [conv(ramp)]
    maps.append(conv(maps[0]))
    xy = jnp.array([[[9.3, 12.0], [16.0, 7.7], [20.25, 20.25]]])
    for m, level_xy in zip(maps, level_coordinates(xy, 2)):
        np.testing.assert_allclose(np.asarray(bilinear(m, level_xy))[..., 0], np.asarray(xy[..., 0]), atol=1e-5)


def test_token_mix_matches_numpy():
    mix = TokenMix(5, 3, nnx.Rngs(0))
    mix.up[...] = jax.random.normal(jax.random.key(1), (5, 3))
    h = np.asarray(jax.random.normal(jax.random.key(2), (2, 5, 4)))
    down, up = np.asarray(mix.down[...], np.float64), np.asarray(mix.up[...], np.float64)
    inner = np.einsum("kt,btc->bkc", down, h)
    gelu = 0.5 * inner * (1 + np.tanh(np.sqrt(2 / np.pi) * (inner + 0.044715 * inner ** 3)))  # jax's default
    np.testing.assert_allclose(np.asarray(mix(jnp.asarray(h))), h + np.einsum("tk,bkc->btc", up, gelu),
                               rtol=1e-5, atol=1e-5)


def test_training_lowers_the_target_loss(tiny_dataset, tmp_path):
    cfg = gft_config(tiny_dataset, "optim.lr=0.005", f"train.steps={STEPS}", "train.async_checkpoint=False")
    task = make_task(cfg.task)
    full = fit(task, cfg, tmp_path / "run")
    batch = next(task.make_data(0, 1))
    loss_fn = jax.jit(lambda model, b: task.loss_fn(model, b, None)[0])
    before = float(loss_fn(task.make_model(nnx.Rngs(0)), batch))
    after = float(loss_fn(merge_model(full.graphdef, full.state), batch))
    assert after < before - 1e-3, (before, after)


def test_prior_round_trip_kind_and_oneshot(tiny_dataset, setup, tmp_path):
    from flashtalker_jax.avatar.export import view_at
    from flashtalker_jax.avatar.renderer import load_renderer, render
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.e2v.oneshot import oneshot
    from flashtalker_jax.flame.model import FlameParams

    cfg, geometry, frame, shape = setup
    generator = make_generator(cfg, geometry, nnx.Rngs(0))
    # non-zero residuals, so the round trip carries more than the colour skip
    kernel = generator.fuse.out.kernel
    kernel[...] = 0.05 * jax.random.normal(jax.random.key(3), kernel.shape)
    prior = write_prior(tmp_path / "run" / "prior", generator, cfg, steps=0)
    folder = read_prior(prior.parent)
    assert folder.meta["generator_kind"] == "genfacetalk"
    loaded = load_generator(folder, geometry)
    assert isinstance(loaded, GenFaceTalkIdentityGenerator)
    background = tuple(cfg.background)
    (map_a, _), (map_b, _) = _both(geometry, background)(loaded, generator, frame, shape)
    np.testing.assert_array_equal(np.asarray(map_a), np.asarray(map_b))

    data = tiny_dataset / "identity_001"
    report = oneshot(prior, "0", data, tmp_path / "avatar")
    assert report["gaussians"] == geometry.placement.count
    renderer, task_cfg = load_renderer(tmp_path / "avatar")
    seq = read_vhap(data)
    track = {f"flame_{k}": jnp.asarray(v[:1]) for k, v in seq.flame.items()}
    params = FlameParams.from_track(track, prefix="flame_", n_expr=renderer.model.flame.expr_dirs.shape[-1])
    viewmat, K = view_at({"viewmat": seq.w2c[0], "K": seq.K[0], "width": seq.width}, task_cfg.resolution)
    result = render(renderer, params, jnp.asarray(viewmat)[None], jnp.asarray(K)[None])
    assert np.isfinite(np.asarray(result.rgb)).all() and float(np.asarray(result.alpha).max()) > 0.5

    # meta.json and config.json must name the same generator
    meta = json.loads((prior / "meta.json").read_text())
    (prior / "meta.json").write_text(json.dumps({**meta, "generator_kind": "uv_unet"}))
    with pytest.raises(ModelFileError, match="meta.json"):
        read_prior(prior)


def test_prior_without_kind_is_the_uv_generator(tiny_dataset, setup, tmp_path):
    """A prior written before task.generator.kind existed (no key in config.json or
    meta.json) loads as GGTalker's generator; an unknown kind is a ConfigError."""
    _, geometry, _, _ = setup
    uv_cfg = load_config("pretrain_e2v:quick", [f"task.dataset={tiny_dataset}"]).task
    prior = write_prior(tmp_path / "prior", make_generator(uv_cfg, geometry, nnx.Rngs(0)), uv_cfg, steps=0)
    saved = json.loads((prior / "config.json").read_text())
    del saved["generator"]["kind"]
    (prior / "config.json").write_text(json.dumps(saved))
    meta = json.loads((prior / "meta.json").read_text())
    del meta["generator_kind"]
    (prior / "meta.json").write_text(json.dumps(meta))
    assert isinstance(load_generator(read_prior(prior), geometry), IdentityGaussianGenerator)
    bad = load_config("pretrain_e2v:quick", [f"task.dataset={tiny_dataset}", "task.generator.kind=unet"]).task
    with pytest.raises(ConfigError, match="task.generator.kind"):
        make_generator(bad, geometry, nnx.Rngs(0))
