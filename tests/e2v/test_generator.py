"""The generator's map and its reading at the avatar's UV placement (no training)."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from conftest import quick_config
from flashtalker_jax.e2v.generator import MAP_CHANNELS, sample_at_placement
from flashtalker_jax.e2v.task import build_geometry, make_generator, resolve_flame_dir


def test_map_shapes_and_placement_samples(tiny_dataset):
    cfg = quick_config(tiny_dataset).task
    geometry = build_geometry(cfg, resolve_flame_dir(cfg, tiny_dataset))
    generator = make_generator(cfg, geometry, nnx.Rngs(0))
    r = cfg.generator.map_resolution
    flame = geometry.flame
    from flashtalker_jax.flame.lbs import flame_forward
    from flashtalker_jax.flame.model import FlameParams

    params = FlameParams.zeros(2, n_shape=0, n_expr=flame.n_expr)
    vertices = flame_forward(flame, params).vertices
    viewmat = jnp.tile(jnp.eye(4).at[2, 3].set(1.2), (2, 1, 1))
    K = jnp.tile(jnp.array([[217.0, 0, 32], [0, 217.0, 32], [0, 0, 1]]), (2, 1, 1))
    image = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
    uv_map = generator(image, vertices, viewmat, K)
    assert uv_map.shape == (2, r, r, MAP_CHANNELS) and bool(jnp.isfinite(uv_map).all())
    samples = sample_at_placement(uv_map, jnp.asarray(geometry.uv))
    n_uv = int((~geometry.placement.is_teeth).sum())
    assert samples.shape == (2, n_uv, 14)
    # The untrained map is the base values: identity rotation, initial opacity logit.
    np.testing.assert_allclose(np.asarray(samples[..., 6:10]), np.tile([1.0, 0, 0, 0], (2, n_uv, 1)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(samples[..., 10]), generator.init_opacity_logit, atol=1e-5)
    from flashtalker_jax.e2v.generator import avatar_parameters

    values = avatar_parameters(samples, jnp.asarray(geometry.init_log_scale), generator.init_opacity_logit)
    n = geometry.placement.count
    assert values["local_means"].shape == (2, n, 3) and values["opacity_logits"].shape == (2, n)
    # Teeth keep the template's values (not the map's).
    assert float(jnp.abs(values["color_logits"][:, n_uv:]).max()) == 0.0
