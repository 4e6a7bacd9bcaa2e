"""Gaussian diffusion over motion sequences: cosine schedule, forward noising, and a
deterministic DDIM sampler with classifier-free guidance for an x0-predicting model.

Indexing: n = 0 .. N-1 are the N training steps; `alpha_bars[n]` is the cumulative signal
fraction after step n (Nichol & Dhariwal 2021, cosine schedule with offset s = 0.008,
betas clipped at 0.999), so x_n = sqrt(ab[n]) x0 + sqrt(1 - ab[n]) eps.
DDIM (Song et al. 2021, eta = 0) visits a decreasing subsequence of steps; from step n to
the next n' it forms eps_hat = (x_n - sqrt(ab[n]) x0_hat) / sqrt(1 - ab[n]) and
x_n' = sqrt(ab[n']) x0_hat + sqrt(1 - ab[n']) eps_hat; the last step returns x0_hat.
The only randomness is the initial noise, drawn from the caller's key: same key, same output.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

# denoise(x_n (B, ...), n (B,) int) -> x0_hat (B, ...)
Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


def cosine_alpha_bars(num_steps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """(num_steps,) float64 cumulative products of (1 - beta_n), decreasing from ~1 to ~0."""
    def f(t):
        return np.cos((t / num_steps + offset) / (1 + offset) * np.pi / 2) ** 2

    steps = np.arange(num_steps + 1, dtype=np.float64)
    betas = np.minimum(1.0 - f(steps[1:]) / f(steps[:-1]), max_beta)
    return np.cumprod(1.0 - betas)


def q_sample(alpha_bars: Float[Array, "N"], x0: Float[Array, "B ..."], n: Int[Array, "B"],
             noise: Float[Array, "B ..."]) -> Float[Array, "B ..."]:
    """Noise x0 to step n (per example)."""
    ab = alpha_bars[n].reshape((-1,) + (1,) * (x0.ndim - 1)).astype(x0.dtype)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def ddim_steps(num_train_steps: int, num_sample_steps: int) -> np.ndarray:
    """Decreasing, evenly spaced training steps to visit, ending at step 0."""
    if not 1 <= num_sample_steps <= num_train_steps:
        raise ValueError(f"sampling steps {num_sample_steps} must be in [1, {num_train_steps}]")
    return np.round(np.linspace(num_train_steps - 1, 0, num_sample_steps)).astype(np.int32)


def guided(cond: jax.Array, uncond: jax.Array, scale: float) -> jax.Array:
    """Classifier-free guidance on x0 predictions: uncond + scale (cond - uncond)."""
    return uncond + scale * (cond - uncond)


def ddim_sample(denoise: Denoiser, alpha_bars: Float[Array, "N"], shape: tuple[int, ...],
                key: jax.Array, num_sample_steps: int) -> jax.Array:
    """Deterministic DDIM from N(0, I) noise drawn with `key`; returns x0 of `shape`."""
    steps = ddim_steps(alpha_bars.shape[0], num_sample_steps)
    ab = jnp.asarray(alpha_bars, jnp.float32)
    ab_next = jnp.concatenate([ab[steps[1:]], jnp.ones((1,), jnp.float32)])
    x = jax.random.normal(key, shape, jnp.float32)

    def body(x, inputs):
        n, a, a_next = inputs
        x0 = denoise(x, jnp.full((shape[0],), n, jnp.int32))
        eps = (x - jnp.sqrt(a) * x0) / jnp.sqrt(1.0 - a)
        return jnp.sqrt(a_next) * x0 + jnp.sqrt(1.0 - a_next) * eps, None

    x, _ = jax.lax.scan(body, x, (jnp.asarray(steps), ab[steps], ab_next))
    return x
