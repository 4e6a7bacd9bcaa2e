"""render.camera.project_points, the one projection of the metrics (exact pinhole) and the
training losses (depth clamped): hand-computed values, both depth behaviours, batched
cameras, and the formulas the two former copies used (bit-identical results)."""
import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.avatar import losses
from flashtalker_jax.render.camera import project_points


def _camera():
    viewmat = np.eye(4, dtype=np.float32)
    viewmat[:3, 3] = [0.0, 0.0, 1.0]  # camera 1 m in front of the origin
    K = np.array([[100.0, 0, 50], [0, 200.0, 40], [0, 0, 1]], np.float32)
    return viewmat, K


def test_hand_computed():
    viewmat, K = _camera()
    uv = project_points(np.array([[[0.1, 0.2, 1.0]]], np.float32), viewmat, K)
    np.testing.assert_allclose(np.asarray(uv), [[[55.0, 60.0]]], rtol=1e-6)


def test_min_depth_only_changes_points_at_or_behind_the_camera():
    viewmat, K = _camera()
    points = np.array([[0.1, 0.2, 1.0], [0.1, 0.2, -1.0], [0.1, 0.2, -2.0]], np.float32)  # depth 2, 0, -1
    exact = np.asarray(project_points(points, viewmat, K))
    clamped = np.asarray(project_points(points, viewmat, K, min_depth=1e-6))
    np.testing.assert_array_equal(exact[0], clamped[0])
    assert not np.isfinite(exact[1]).all() and np.isfinite(clamped).all()
    np.testing.assert_allclose(exact[2], [40.0, 0.0], atol=1e-5)  # behind: mirrored through (50, 40)
    np.testing.assert_allclose(clamped[2], [-4e7, 0.0], rtol=1e-5)  # camera-space (-40, 0) / 1e-6


def _former_metrics(points, viewmat, K):  # metrics/lmd.py before it used render.camera
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    uvw = cam @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


def _former_losses(points, viewmat, K):  # avatar/losses.py before it used render.camera
    cam = jnp.einsum("bij,blj->bli", viewmat[:, :3, :3], points) + viewmat[:, None, :3, 3]
    pix = jnp.einsum("bij,blj->bli", K, cam)
    return pix[..., :2] / jnp.maximum(pix[..., 2:3], 1e-6)


def test_callers_get_what_the_former_copies_gave():
    key = jax.random.key(0)
    points = jax.random.normal(key, (3, 7, 3)) * 0.1
    viewmat, K = _camera()
    views = jnp.stack([jnp.asarray(viewmat).at[0, 3].set(0.01 * b) for b in range(3)])
    Ks = jnp.stack([jnp.asarray(K)] * 3)
    vmapped = jax.jit(jax.vmap(project_points))(points, views, Ks)  # as eval/render.py calls it
    np.testing.assert_allclose(vmapped, jax.jit(jax.vmap(_former_metrics))(points, views, Ks), rtol=1e-6)
    np.testing.assert_array_equal(jax.jit(losses.project_points)(points, views, Ks),
                                  jax.jit(_former_losses)(points, views, Ks))
    np.testing.assert_allclose(project_points(points, views, Ks), vmapped, rtol=1e-6)  # batched cameras


def test_scale_intrinsics_scales_projected_pixels():
    """A point lands `factor` times as far from the image corner on the resized image; numpy
    in gives numpy out of the same dtype, the input untouched; jax in (traced too) the same values."""
    from flashtalker_jax.render.camera import scale_intrinsics

    viewmat, K = _camera()
    points = np.array([[0.1, 0.2, 1.0], [-0.3, 0.1, 0.5]], np.float32)
    scaled = scale_intrinsics(K, 0.25)
    assert isinstance(scaled, np.ndarray) and scaled.dtype == np.float32
    np.testing.assert_array_equal(K, _camera()[1])
    np.testing.assert_allclose(np.asarray(project_points(points, viewmat, scaled)),
                               0.25 * np.asarray(project_points(points, viewmat, K)), rtol=1e-6)
    batch = np.stack([K, 2 * K]).astype(np.float64)
    assert scale_intrinsics(batch, 3).dtype == np.float64
    np.testing.assert_array_equal(scale_intrinsics(batch, 3)[:, 2], batch[:, 2])
    traced = jax.jit(lambda k: scale_intrinsics(k, 0.25))(jnp.asarray(K))
    np.testing.assert_array_equal(np.asarray(traced), scaled)
