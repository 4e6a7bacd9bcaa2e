import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.motion import diffusion


def test_cosine_schedule_matches_closed_form():
    # Without clipping the product of (1 - beta) telescopes to f(n+1) / f(0) (Nichol & Dhariwal Eq. 17).
    n = 500
    f = lambda t: np.cos((t / n + 0.008) / 1.008 * np.pi / 2) ** 2
    ab = diffusion.cosine_alpha_bars(n)
    ref = f(np.arange(1, n + 1)) / f(0)
    np.testing.assert_allclose(ab[:-5], ref[:-5], rtol=1e-10)  # the last steps hit the 0.999 clip
    assert np.all(np.diff(ab) < 0) and ab[0] > 0.999 and ab[-1] < 1e-3


def test_q_sample_per_example_steps():
    ab = jnp.asarray(diffusion.cosine_alpha_bars(100))
    x0 = jnp.ones((2, 3, 4))
    noise = jnp.full((2, 3, 4), 2.0)
    out = diffusion.q_sample(ab, x0, jnp.array([0, 99]), noise)
    for i, n in enumerate([0, 99]):
        np.testing.assert_allclose(out[i], np.sqrt(ab[n]) + 2 * np.sqrt(1 - ab[n]), rtol=1e-6)


def test_ddim_steps_cover_range():
    steps = diffusion.ddim_steps(500, 10)
    assert steps[0] == 499 and steps[-1] == 0 and np.all(np.diff(steps) < 0)
    with pytest.raises(ValueError):
        diffusion.ddim_steps(10, 11)


def numpy_ddim(denoise, ab, x, steps):
    """Independent reference: Song et al. Eq. 12 with sigma = 0, step by step in float64."""
    for i, n in enumerate(steps):
        prev = ab[steps[i + 1]] if i + 1 < len(steps) else 1.0
        x0 = denoise(x, n)
        eps = (x - np.sqrt(ab[n]) * x0) / np.sqrt(1 - ab[n])
        x = np.sqrt(prev) * x0 + np.sqrt(1 - prev) * eps
    return x


def test_ddim_matches_numpy_reference():
    ab = diffusion.cosine_alpha_bars(200)
    w = np.array([[0.5, -0.2], [0.1, 0.3]])
    denoise_np = lambda x, n: np.tanh(x @ w) * (1 + n / 200)
    denoise_jx = lambda x, n: jnp.tanh(x @ jnp.asarray(w, jnp.float32)) * (1 + n[:, None, None] / 200)
    key = jax.random.key(3)
    out = diffusion.ddim_sample(denoise_jx, jnp.asarray(ab), (2, 5, 2), key, 8)
    x_init = np.asarray(jax.random.normal(key, (2, 5, 2), jnp.float32), np.float64)
    ref = numpy_ddim(denoise_np, ab, x_init, diffusion.ddim_steps(200, 8))
    # float32 through 8 steps whose coefficients reach 1/sqrt(1 - 0.9999): 1e-4 absolute.
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_ddim_with_oracle_denoiser_returns_the_target():
    ab = jnp.asarray(diffusion.cosine_alpha_bars(100))
    target = jnp.linspace(-1, 1, 12).reshape(1, 6, 2)
    out = diffusion.ddim_sample(lambda x, n: jnp.broadcast_to(target, x.shape), ab, (1, 6, 2),
                                jax.random.key(0), 5)
    np.testing.assert_allclose(out, target, atol=1e-6)


def test_ddim_is_deterministic_per_seed():
    ab = jnp.asarray(diffusion.cosine_alpha_bars(100))
    denoise = lambda x, n: 0.5 * x
    a = diffusion.ddim_sample(denoise, ab, (1, 4, 3), jax.random.key(1), 4)
    b = diffusion.ddim_sample(denoise, ab, (1, 4, 3), jax.random.key(1), 4)
    c = diffusion.ddim_sample(denoise, ab, (1, 4, 3), jax.random.key(2), 4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_guidance_formula():
    cond, uncond = jnp.array([1.0, 2.0]), jnp.array([0.5, 3.0])
    np.testing.assert_allclose(diffusion.guided(cond, uncond, 1.0), cond)
    np.testing.assert_allclose(diffusion.guided(cond, uncond, 0.0), uncond)
    np.testing.assert_allclose(diffusion.guided(cond, uncond, 2.0), [1.5, 1.0])
