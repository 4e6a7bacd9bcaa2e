"""Public `rasterize` contract: batching, per-frame Gaussians, input errors, CLI parsing."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.render import RenderOutput, rasterize
from flashtalker_jax.render.scenes import intrinsics, orbit_cameras, random_scene

W, H = 32, 32


def test_per_frame_gaussians_batch_equals_single_renders(seed):
    """Frames with their own Gaussians and cameras in one call = one call per frame
    (bit-identical: the same per-camera computation, vmapped)."""
    scenes = [random_scene(jax.random.PRNGKey(seed + i), 60, log_scale=-2.5) for i in range(2)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *scenes)
    cams, K = orbit_cameras(2, arc=0.4), intrinsics(W, H)
    batched = rasterize(*stacked, cams, K, W, H, backend="reference", capacity=1024)
    assert isinstance(batched, RenderOutput)
    assert batched.rgb.shape == (2, H, W, 3) and batched.depth.shape == (2, H, W)
    for i in range(2):
        single = rasterize(*scenes[i], cams[i], K, W, H, backend="reference", capacity=1024)
        assert single.rgb.shape == (H, W, 3) and single.alpha.shape == (H, W)
        for a, b in zip(single[:3], batched[:3]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b[i]), err_msg=str(seed))
    assert float(batched.alpha.max()) > 0.5


@pytest.mark.parametrize("change,match", [
    (dict(quats=jnp.ones((5, 3))), "shape"),
    (dict(sh_degree=2), "sh_degree"),
    (dict(backend="cuda"), "backend"),
])
def test_bad_inputs_raise_clear_errors(change, match):
    scene = random_scene(jax.random.PRNGKey(0), 5)
    kwargs = dict(means=scene.means, quats=scene.quats, scales=scene.scales,
                  opacities=scene.opacities, colors=scene.colors, viewmat=jnp.eye(4),
                  K=intrinsics(W, H), width=W, height=H)
    if "sh_degree" in change:   # SH layout (N, K, 3) with too few coefficients
        kwargs["colors"] = jnp.zeros((5, 4, 3))
    kwargs.update(change)
    with pytest.raises((ValueError, AssertionError), match=match):
        rasterize(**kwargs)


def test_bench_cli_parses_sizes_and_skips_gsplat_without_gpu():
    from flashtalker_jax.cli.main import build_parser
    from flashtalker_jax.render.bench import gsplat_unavailable_reason, traffic_floor

    args = build_parser().parse_args(["bench", "raster", "--sizes", "10k,1m", "--batch",
                                      "1,16", "--backends", "pallas"])
    assert args.sizes == [10_000, 1_000_000] and args.batch == [1, 16]
    if jax.default_backend() == "cpu":
        assert "no GPU" in gsplat_unavailable_reason()
    floor = traffic_floor(100, 1, 400, 16, 16)
    # params 100*14*4 + records 400*10*4 + image 256*5*4
    assert floor["fwd_bytes"] == 5600 + 16000 + 5120
    assert floor["fwd_bwd_bytes"] == floor["fwd_bytes"] + 2 * 5120 + 16000 + 5600


def test_auto_picks_the_compiled_compositor_on_cpu_and_pallas_elsewhere(monkeypatch):
    import importlib

    module = importlib.import_module("flashtalker_jax.render.rasterize")  # not the function
    assert "chunked" in module.BACKENDS
    monkeypatch.setattr(module.jax, "default_backend", lambda: "cpu")
    assert module._resolve("auto") == "chunked"
    for platform in ("gpu", "tpu"):
        monkeypatch.setattr(module.jax, "default_backend", lambda p=platform: p)
        assert module._resolve("auto") == "pallas"
    assert module._resolve("tiles") == "tiles"


def test_chunked_batch_equals_single_renders(seed):
    """"chunked" walks the cameras with lax.map (each its own early exit): a batch of
    different scenes and cameras renders as each one alone."""
    scenes = [random_scene(jax.random.PRNGKey(seed + i), 60, log_scale=-2.5) for i in range(2)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *scenes)
    cams, K = orbit_cameras(2, arc=0.4), intrinsics(W, H)
    batched = rasterize(*stacked, cams, K, W, H, backend="chunked", capacity=1024)
    assert float(batched.alpha.max()) > 0.5
    for i in range(2):
        single = rasterize(*scenes[i], cams[i], K, W, H, backend="chunked", capacity=1024)
        for a, b in zip(single[:3], batched[:3]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), atol=1e-6)
