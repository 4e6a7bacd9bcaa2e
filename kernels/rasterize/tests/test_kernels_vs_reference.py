"""The Pallas compositing kernels beside their reference (reference.py), on screen-space
inputs (no projection: these tests import nothing outside this package):
- both kernels (Triton in interpret mode, Mosaic in TPU interpret mode: SMEM chunks, DMA,
  scalar prefetch; compiled on the device with FLASHTALKER_KERNEL_MODE=compiled) match the plain-JAX reference compositor: forward <= 1e-5, gradients
  <= 1e-4 relative to the largest reference magnitude (float32: the same expressions in
  the same order forward; the kernel backward recomputes later contributions as
  final - running sum where autodiff accumulates in reverse, a few ulps of cancellation
  per pixel summed over pixels). Tiles hold more than one chunk; one tile is empty.
- the backward is bitwise deterministic (no atomics: per-record slots + segmented scan).
- jax.export lowers forward + backward for cuda (Triton) and tpu (Mosaic): catches
  kernels that only work in interpret mode (lowering only: the Triton/Mosaic compilers
  themselves run on the device at XLA compile time).
Seeds: FLASHTALKER_TEST_SEEDS (conftest.py at the repository root).
Mode: FLASHTALKER_KERNEL_MODE=interpret (default: Pallas interpret mode, any machine) or
compiled (the real Triton compiler on a GPU, Mosaic on a TPU; a kernel whose device is not
JAX's default backend fails, naming it: `-k "not mosaic"` on a GPU). launch/gpu_check.sh
runs these tests compiled.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from flashtalker_jax.kernels.rasterize import binning, gpu, reference, tpu
from flashtalker_jax.kernels.rasterize.vjp import composite_pallas

MODE_VARIABLE = "FLASHTALKER_KERNEL_MODE"
KERNEL_PLATFORM = {"triton": "gpu", "mosaic": "tpu"}


def kernel_interpret(kernel: str, environ=os.environ, backend: str | None = None) -> bool:
    """Whether `kernel` runs in interpret mode here: MODE_VARIABLE "interpret" (default) or
    "compiled" (needs the kernel's device as JAX's default backend; refused otherwise)."""
    mode = environ.get(MODE_VARIABLE, "interpret")
    if mode == "interpret":
        return True
    if mode != "compiled":
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: expected 'interpret' or 'compiled'")
    backend = backend or jax.default_backend()
    if backend != KERNEL_PLATFORM[kernel]:
        raise RuntimeError(f"{MODE_VARIABLE}=compiled: the {kernel} kernel compiles for "
                           f"{KERNEL_PLATFORM[kernel]}, but JAX's backend is {backend}")
    return False


B, N, W, H, CAPACITY = 1, 40, 48, 16, 256
TILES_X, TILES_Y = 3, 1


def _inputs(seed):
    """Screen-space Gaussians big enough that the first two tiles hold more than one chunk
    each; their binned radius (16 px around centres in x < 16) leaves the third empty."""
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    means2d = jax.random.uniform(k[0], (B, N, 2)) * jnp.array([15.9, H])
    scale = jax.random.uniform(k[1], (B, N, 2), minval=4.0, maxval=12.0)
    conics = jnp.stack([1 / scale[..., 0] ** 2, jnp.zeros((B, N)), 1 / scale[..., 1] ** 2], -1)
    opacities = jax.random.uniform(k[2], (B, N), minval=0.05, maxval=0.95)
    features = jax.random.uniform(k[3], (B, N, 4))
    depths = jax.random.uniform(k[4], (B, N), minval=1.0, maxval=3.0)
    radii = jnp.full((B, N, 2), 16, jnp.int32)
    return means2d, conics, opacities, features, depths, radii


def _bins(means2d, depths, radii):
    return jax.vmap(lambda m, d, r: binning.bin_gaussians(
        m, r, d, TILES_X, TILES_Y, CAPACITY))(means2d, depths, radii)


def _grads(composite, means2d, conics, opacities, features, bins):
    def loss(m, c, o, f):
        acc, trans = composite(m, c, o, f, bins)
        return jnp.sum(acc * jnp.cos(acc)) + jnp.sum(trans ** 2), (acc, trans)
    return jax.grad(loss, argnums=range(4), has_aux=True)(means2d, conics, opacities, features)


@pytest.mark.parametrize("kernel,platform", [("triton", "cuda"), ("mosaic", "tpu")])
def test_forward_and_backward_lower_for_device(kernel, platform):
    means2d, conics, opacities, features, depths, radii = _inputs(0)

    def grads(m, c, o, f, d, r):
        bins = _bins(m, d, r)
        return _grads(functools.partial(composite_pallas, width=W, height=H, kernel=kernel,
                                        interpret=False), m, c, o, f, bins)

    checks = [export.DisabledSafetyCheck.custom_call(name) for name in
              ("tpu_custom_call", "__gpu$xla.gpu.triton", "triton_kernel_call")]
    exported = export.export(jax.jit(grads), platforms=[platform], disabled_checks=checks)(
        means2d, conics, opacities, features, depths, radii)
    text = exported.mlir_module()
    call = "tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton"
    assert text.count(f"custom_call @{call}") == 2, "expected forward + backward kernels"


@pytest.mark.parametrize("kernel", ["triton", "mosaic"])
def test_kernels_match_reference(kernel, seed):
    means2d, conics, opacities, features, depths, radii = _inputs(seed)
    bins = _bins(means2d, depths, radii)
    per_tile = jnp.diff(bins.tile_starts[0])
    chunk = (gpu if kernel == "triton" else tpu).CHUNK
    assert int(per_tile[0]) > chunk and int(per_tile[1]) > chunk and int(per_tile[2]) == 0

    def ref(m, c, o, f, b):
        return jax.vmap(functools.partial(reference.composite, width=W, height=H))(m, c, o, f, b)

    pallas = functools.partial(composite_pallas, width=W, height=H, kernel=kernel,
                               interpret=kernel_interpret(kernel))
    want_g, want = jax.jit(functools.partial(_grads, ref))(means2d, conics, opacities,
                                                           features, bins)
    got_g, got = jax.jit(functools.partial(_grads, pallas))(means2d, conics, opacities,
                                                            features, bins)
    for a in got + got_g:
        assert np.all(np.isfinite(a)), f"seed {seed}: unwritten output (NaN-poisoned)"
    assert float(jnp.max(want[0])) > 0.1 and float(jnp.min(want[1][..., 32:])) == 1.0
    tol = (1e-5, 1e-5, 1e-4, 1e-4, 1e-4, 1e-4)
    for a, b, t in zip(got + got_g, want + want_g, tol):
        err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        assert err <= t, f"seed {seed}: {err}"


def test_backward_is_bitwise_deterministic(seed):
    means2d, conics, opacities, features, depths, radii = _inputs(seed)
    bins = _bins(means2d, depths, radii)
    pallas = functools.partial(composite_pallas, width=W, height=H, kernel="triton",
                               interpret=kernel_interpret("triton"))
    grads = jax.jit(functools.partial(_grads, pallas))
    first = grads(means2d, conics, opacities, features, bins)[0]
    second = grads(means2d, conics, opacities, features, bins)[0]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_kernel_mode_switch():
    """FLASHTALKER_KERNEL_MODE: interpret by default, compiled only on the kernel's device."""
    assert kernel_interpret("triton", {}) and kernel_interpret("mosaic", {"FLASHTALKER_KERNEL_MODE": "interpret"})
    compiled = {MODE_VARIABLE: "compiled"}
    assert kernel_interpret("triton", compiled, backend="gpu") is False
    assert kernel_interpret("mosaic", compiled, backend="tpu") is False
    with pytest.raises(RuntimeError, match="compiles for gpu, but JAX's backend is cpu"):
        kernel_interpret("triton", compiled, backend="cpu")
    with pytest.raises(RuntimeError, match="compiles for tpu"):
        kernel_interpret("mosaic", compiled, backend="gpu")
    with pytest.raises(ValueError, match="expected 'interpret' or 'compiled'"):
        kernel_interpret("triton", {MODE_VARIABLE: "1"})
