"""The vectorised tile compositor against the project's reference rasterizer.

Same projection and binning, different compositing order of operations (cumulative log
sums vs a sequential product): float32 agreement to 1e-4 on [0, 1] colours is what ~100
blended layers of rounding allow.
"""
import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.avatar.tile_render import render_tiles
from flashtalker_jax.render.rasterize import rasterize


def scene(n=120, seed=0):
    rng = np.random.default_rng(seed)
    means = np.concatenate([rng.uniform(-0.6, 0.6, (n, 2)), rng.uniform(-0.3, 0.3, (n, 1))], 1)
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(-4.0, -2.0, (n, 3)))
    opacities = rng.uniform(0.3, 1.0, n)
    colors = rng.uniform(0, 1, (n, 4))
    viewmat = np.eye(4)
    viewmat[2, 3] = 2.5
    K = np.array([[40.0, 0, 16], [0, 40, 14], [0, 0, 1]])
    return [jnp.asarray(a, jnp.float32) for a in (means, quats, scales, opacities, colors, viewmat, K)]


def test_matches_reference_rasterizer_in_values_and_gradients():
    means, quats, scales, opacities, colors, viewmat, K = scene()
    bg = jnp.array([0.2, 0.5, 0.9, 0.0])
    w, h = 32, 28

    def ours(m, c):
        out = render_tiles(m[None], quats[None], scales[None], opacities[None], c[None],
                           viewmat[None], K[None], w, h, background=bg[None], capacity=1024,
                           per_tile=200)
        return out.rgb[0], out.alpha[0], out.tile_overflow[0]

    def ref(m, c):
        out = rasterize(m, quats, scales, opacities, c, viewmat, K, w, h, background=bg,
                        backend="reference", capacity=1024)
        return out.rgb, out.alpha

    rgb, alpha, overflow = ours(means, colors)
    rgb_ref, alpha_ref = ref(means, colors)
    assert int(overflow) <= 0
    assert float(alpha_ref.max()) > 0.9  # the scene is not empty
    np.testing.assert_allclose(rgb, rgb_ref, atol=1e-4)
    np.testing.assert_allclose(alpha, alpha_ref, atol=1e-4)

    weights = jax.random.uniform(jax.random.key(0), rgb.shape)
    g_ours = jax.grad(lambda m, c: jnp.sum(ours(m, c)[0] * weights), argnums=(0, 1))(means, colors)
    g_ref = jax.grad(lambda m, c: jnp.sum(ref(m, c)[0] * weights), argnums=(0, 1))(means, colors)
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a, b, atol=2e-3 * float(jnp.abs(b).max()))


def test_reports_overflow_when_a_tile_holds_more_than_per_tile():
    means, quats, scales, opacities, colors, viewmat, K = scene()
    out = render_tiles(means[None], quats[None], scales[None], opacities[None], colors[None],
                       viewmat[None], K[None], 32, 28, background=jnp.zeros((1, 4)),
                       capacity=1024, per_tile=4)
    assert int(out.tile_overflow[0]) > 0
