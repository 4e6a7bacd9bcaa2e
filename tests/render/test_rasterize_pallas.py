"""The fast backends vs backend "reference", through the whole public pipeline:
projection, SH, binning, compositing, overflow. FAST_BACKENDS: "pallas" (kernels in
interpret mode on CPU) and "chunked" (render/chunked.py, the CPU compositor; it blends
in log space like "tiles", whose float32 argument in tests/render/test_tiles_backend.py
gives the same bounds).
The kernels' own parity tests on screen-space inputs sit beside them
(kernels/rasterize/tests/).


Tolerances (float32): forward max relative error <= 1e-5 (same expressions in the same
order; only fused/unfused rounding differs), gradients <= 1e-4 (the kernel backward
recomputes later contributions as final - running sum, autodiff accumulates them in
reverse: a few ulps of cancellation per pixel, summed over pixels). Errors are
normalised by the largest reference magnitude of each array.
Scenes come from the fixed seeds of FLASHTALKER_TEST_SEEDS (conftest.py). Interpret mode fills
kernel outputs with NaN before the run (poisoned), so an unwritten pixel or gradient
slot shows up as a non-finite value.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.kernels.rasterize import gpu
from flashtalker_jax.render import BufferOverflowError, rasterize
from flashtalker_jax.kernels.rasterize.binning import bin_gaussians, tile_grid
from flashtalker_jax.render.projection import project
from flashtalker_jax.render.scenes import (intrinsics, look_at_viewmat, orbit_cameras,
                                           random_scene)

W, H = 48, 32          # 3 x 2 tiles
N = 160
CAPACITY = 2048
SH_DEGREE = 1
FAST_BACKENDS = ("pallas", "chunked")


def _cameras():
    """Two cameras on the scene and one looking away from it (every tile empty)."""
    away = look_at_viewmat(jnp.array([50.0, 0.0, 2.5]), jnp.array([100.0, 0.0, 2.5]))
    return jnp.concatenate([orbit_cameras(2, arc=0.3), away[None]])


def _scene(seed):
    return random_scene(jax.random.PRNGKey(seed), N, sh_degree=SH_DEGREE, extent=0.45,
                        log_scale=-2.8, behind_fraction=0.1, huge_fraction=0.05,
                        tiny_fraction=0.1)


@functools.partial(jax.jit, static_argnames="backend")
def _render_and_grads(scene, viewmats, backend):
    K = intrinsics(W, H, 0.9)

    def loss(means, quats, scales, opacities, colors, viewmats):
        out = rasterize(means, quats, scales, opacities, colors, viewmats, K, W, H,
                        sh_degree=SH_DEGREE, background=jnp.array([0.1, 0.2, 0.3]),
                        backend=backend, capacity=CAPACITY)
        weights = jnp.cos(jnp.arange(out.rgb.size, dtype=jnp.float32)).reshape(out.rgb.shape)
        value = (jnp.sum(out.rgb * weights) + jnp.sum(out.alpha ** 2)
                 + 0.1 * jnp.sum(out.depth * out.alpha))
        return value, out

    grads, out = jax.grad(loss, argnums=range(6), has_aux=True)(*scene, viewmats)
    return out, grads


@pytest.fixture(scope="module")
def case(seed):
    scene, cams = _scene(seed), _cameras()
    return seed, scene, cams, _render_and_grads(scene, cams, "reference")


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


@jax.jit
def _coverage(scene, cams):
    """Per-tile counts of camera 0, depths of camera 0, visible count of camera 2."""
    K = intrinsics(W, H, 0.9)
    tx, ty = tile_grid(W, H)
    p = project(scene.means, scene.quats, scene.scales, scene.opacities, cams[0], K, W, H)
    bins = bin_gaussians(p.means2d, p.radii, p.depths, tx, ty, CAPACITY)
    away = project(scene.means, scene.quats, scene.scales, scene.opacities, cams[2], K, W, H)
    return jnp.diff(bins.tile_starts), p.depths, jnp.sum(jnp.any(away.radii > 0, axis=-1))


def test_scene_covers_the_required_cases(case):
    seed, scene, cams, _ = case
    per_tile, depths, seen_away = _coverage(scene, cams)
    assert int(per_tile.max()) > gpu.CHUNK, f"seed {seed}: no tile holds more than a chunk"
    assert int(per_tile.min()) >= 0
    assert int(jnp.sum(depths < 0)) > 0, f"seed {seed}: nothing behind the camera"
    assert int(seen_away) == 0, "the third camera must see nothing (all tiles empty)"
    largest = jnp.max(scene.scales, axis=-1)
    assert float(largest.max()) > 0.2, f"seed {seed}: no huge Gaussian"
    assert float(largest.min()) < 1e-3, f"seed {seed}: no tiny Gaussian"


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_forward_matches_reference(case, backend):
    seed, scene, cams, (ref, _) = case
    out, _ = _render_and_grads(scene, cams, backend)
    for name in ("rgb", "alpha", "depth"):
        got, want = getattr(out, name), getattr(ref, name)
        assert np.all(np.isfinite(got)), f"seed {seed}: {name} has unwritten pixels"
        assert _rel(got, want) <= 1e-5, f"seed {seed}: {name} {_rel(got, want)}"
    np.testing.assert_array_equal(out.n_intersections, ref.n_intersections)
    assert float(ref.alpha[0].max()) > 0.9 and float(ref.alpha[2].max()) == 0.0


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_gradients_match_reference(case, backend):
    seed, scene, cams, (_, ref_grads) = case
    _, grads = _render_and_grads(scene, cams, backend)
    names = ("means", "quats", "scales", "opacities", "colors", "viewmats")
    for name, got, want in zip(names, grads, ref_grads):
        assert np.all(np.isfinite(got)), f"seed {seed}: {name} gradient not finite"
        assert np.max(np.abs(want)) > 0, f"seed {seed}: {name} gradient is zero"
        assert _rel(got, want) <= 1e-4, f"seed {seed}: {name} {_rel(got, want)}"


@functools.partial(jax.jit, static_argnames="backend")
def _batched_render_and_grads(scenes, viewmats, background, backend):
    """The avatar's call (avatar/adapt.py render): one different scene per frame (leading
    frame axis on every Gaussian input), plain colour channels rgb + lip label, a
    per-frame background, one camera per frame."""
    K = intrinsics(W, H, 0.9)

    def loss(means, quats, scales, opacities, colors, background):
        out = rasterize(means, quats, scales, opacities, colors, viewmats, K, W, H,
                        background=background, backend=backend, capacity=CAPACITY)
        weights = jnp.sin(jnp.arange(out.rgb.size, dtype=jnp.float32)).reshape(out.rgb.shape)
        return jnp.sum(out.rgb * weights) + jnp.sum(out.alpha ** 2), out

    grads, out = jax.grad(loss, argnums=range(6), has_aux=True)(*scenes, background)
    return out, grads


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_batched_scenes_with_four_channels_match_reference(seed, backend):
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    frames = [random_scene(k, N, channels=4, extent=0.45, log_scale=-2.8, huge_fraction=0.05)
              for k in keys]
    scenes = jax.tree.map(lambda *x: jnp.stack(x), *frames)
    background = jnp.array([[0.1, 0.2, 0.3, 0.0], [0.6, 0.5, 0.4, 0.0]])
    cams = orbit_cameras(2, arc=0.3)
    ref, ref_grads = _batched_render_and_grads(scenes, cams, background, "reference")
    out, grads = _batched_render_and_grads(scenes, cams, background, backend)
    assert out.rgb.shape == (2, H, W, 4) and float(ref.rgb[..., 3].max()) > 0.5
    for name in ("rgb", "alpha", "depth"):
        assert _rel(getattr(out, name), getattr(ref, name)) <= 1e-5, f"seed {seed}: {name}"
    names = ("means", "quats", "scales", "opacities", "colors", "background")
    for name, got, want in zip(names, grads, ref_grads):
        assert np.all(np.isfinite(got)), f"seed {seed}: {name} gradient not finite"
        assert np.max(np.abs(want)) > 0, f"seed {seed}: {name} gradient is zero"
        assert _rel(got, want) <= 1e-4, f"seed {seed}: {name} {_rel(got, want)}"


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_backward_is_bitwise_deterministic(case, backend):
    _, scene, cams, _ = case
    first = _render_and_grads(scene, cams, backend)[1]
    second = _render_and_grads(scene, cams, backend)[1]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_buffer_overflow_reruns_eagerly_and_raises_under_jit(case, backend):
    seed, scene, cams, (ref, _) = case
    args = (*scene, cams[:1], intrinsics(W, H, 0.9), W, H)
    kw = dict(sh_degree=SH_DEGREE, background=jnp.array([0.1, 0.2, 0.3]))
    small = rasterize(*args, **kw, backend=backend, capacity=64)
    assert int(small.n_intersections[0]) > 64, f"seed {seed}: overflow was not forced"
    assert not bool(small.overflow[0])
    assert _rel(small.rgb[0], ref.rgb[0]) <= 1e-5, f"seed {seed}: re-run differs"
    # Raised in a host callback: JAX re-raises it as JaxRuntimeError with the message.
    with pytest.raises((BufferOverflowError, jax.errors.JaxRuntimeError),
                       match="tile intersections do not fit"):
        jax.block_until_ready(jax.jit(lambda m: rasterize(
            m, *args[1:], **kw, backend=backend, capacity=64).rgb)(scene.means))
