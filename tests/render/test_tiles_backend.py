"""rasterize(backend="tiles") against backend="reference": values, gradients, overflow.

Both backends share projection and binning and apply gsplat's rules; they differ only in
how the blending is computed (cumulative sums of log(1 - alpha) over a tile's list vs a
sequential product per entry). In float32 each of the ~70 layers a pixel sees here adds
a rounding error of a few ulp (~1e-7) to the transmittance, so images agree to 1e-5 on
[0, 1] colours (measured 2e-7) and expected depths of ~2.5 units to 1e-5 relative
(measured 2e-6; the division by alpha amplifies it). Gradients go through exp/log of the
same sums and are compared to 1e-4 of each array's largest entry (measured <= 1e-6 on
seeds 0-2), loose enough for a Gaussian sitting at the 1/255 or 1e-4 cut-off to flip.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.render import BufferOverflowError, rasterize, required_per_tile

W, H = 32, 28


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


BG = jnp.array([0.2, 0.5, 0.9, 0.0])


def render(gauss, viewmat, K, backend, **kw):
    return rasterize(*gauss, viewmat, K, W, H, background=BG, backend=backend, capacity=1024, **kw)


@pytest.mark.parametrize("backend", ["tiles", "chunked"])
def test_forward_and_gradients_match_reference(backend):
    """"chunked" (render/chunked.py) blends in log space too, so the same bounds hold."""
    *gauss, viewmat, K = scene()
    longest = required_per_tile(*gauss[:4], viewmat, K, W, H)
    assert longest > 40  # tiles hold many layers: the blending order matters
    weights = jax.random.uniform(jax.random.key(0), (H, W, 6))

    def run(backend):
        """Images and gradients of a weighted sum of rgb, alpha and alpha * depth w.r.t.
        means, quats, scales, opacities, colors (one compile per backend)."""
        def loss(*g):
            out = rasterize(*g, viewmat, K, W, H, background=BG, backend=backend,
                            capacity=1024, per_tile=longest, tile_chunk=3)  # 2 x 3 tiles + pad
            image = jnp.concatenate([out.rgb, out.alpha[..., None],
                                     (out.depth * out.alpha)[..., None]], -1)
            return jnp.sum(image * weights), out

        return jax.jit(jax.value_and_grad(loss, tuple(range(5)), has_aux=True))(*gauss)

    (_, fast), g_fast = run(backend)
    (_, ref), g_ref = run("reference")
    assert float(ref.alpha.max()) > 0.9 and float(ref.alpha.min()) < 0.1  # not empty, not full
    np.testing.assert_allclose(fast.rgb, ref.rgb, atol=1e-5)
    np.testing.assert_allclose(fast.alpha, ref.alpha, atol=1e-5)
    covered = np.asarray(ref.alpha) > 0.05  # expected depth is ill-conditioned where alpha ~ 0
    np.testing.assert_allclose(np.asarray(fast.depth)[covered], np.asarray(ref.depth)[covered],
                               rtol=1e-5)
    assert not bool(fast.overflow) and int(fast.n_intersections) == int(ref.n_intersections)
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), g_fast, g_ref):
        assert float(jnp.abs(b).max()) > 0, name
        np.testing.assert_allclose(a, b, atol=1e-4 * float(jnp.abs(b).max()), err_msg=name)


def test_per_tile_overflow_reruns_eagerly_and_raises_under_jit():
    *gauss, viewmat, K = scene()
    longest = required_per_tile(*gauss[:4], viewmat, K, W, H)
    # Re-runs round per_tile up to a multiple of 64: the same executable as `full`.
    full = render(gauss, viewmat, K, "tiles", per_tile=-(-longest // 64) * 64)
    short = render(gauss, viewmat, K, "tiles", per_tile=4)  # eager: re-runs with a longer list
    assert not bool(short.overflow)
    np.testing.assert_array_equal(short.rgb, full.rgb)
    # A short intersection buffer and a short list together: both grow.
    tiny = rasterize(*gauss, viewmat, K, W, H, background=BG, backend="tiles", capacity=16,
                     per_tile=4)
    np.testing.assert_array_equal(tiny.rgb, full.rgb)

    jitted = jax.jit(lambda m: render([m, *gauss[1:]], viewmat, K, "tiles", per_tile=4).rgb)
    with pytest.raises(Exception, match=f"a tile holds {longest} entries, more than per_tile=4") as info:
        jax.block_until_ready(jitted(gauss[0]))
    assert isinstance(info.value, (BufferOverflowError, jax.errors.JaxRuntimeError))


def test_tiles_options_are_checked():
    *gauss, viewmat, K = scene(n=5)
    with pytest.raises(ValueError, match="per_tile"):
        render(gauss, viewmat, K, "tiles", per_tile=0)



@pytest.mark.parametrize("backend", ["pallas", "chunked"])
def test_fast_forward_matches_reference_with_four_channel_colours(backend):
    """The avatar renders rgb + a lip channel (C = 4) through the default backend; the
    kernel tests cover C = 3. Same float32 bound as above (pallas blends sequentially, like
    the reference). Forward only: differentiating the interpret-mode kernels compiles for
    minutes on 2 cores; the kernel tests check their gradients."""
    *gauss, viewmat, K = scene(n=60, seed=3)
    fast = render(gauss, viewmat, K, backend)
    ref = render(gauss, viewmat, K, "reference")
    assert float(ref.alpha.max()) > 0.9 and ref.rgb.shape == (H, W, 4)
    for a, b in zip(fast[:2], ref[:2]):
        np.testing.assert_allclose(a, b, atol=1e-5)
