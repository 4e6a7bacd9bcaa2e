"""encoder/camera_code: the head-to-camera code inverts exactly, and means what it says in
pixels. Reference: flame_forward's own posed mesh, projected with the pinhole model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.encoder import camera_code
from flashtalker_jax.flame import lbs
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.flame.procedural import procedural_model

WIDTH = 64
to_camera_code = jax.jit(camera_code.to_camera_code, static_argnums=4)
from_camera_code = jax.jit(camera_code.from_camera_code, static_argnums=5)
flame_forward = jax.jit(lbs.flame_forward)


@pytest.fixture(scope="module")
def model():
    return procedural_model(0).truncated(20, 10)


def _frames(model, seed, n=5):
    rng = np.random.default_rng(seed)
    params = FlameParams(
        shape=jnp.asarray(rng.normal(0, 1, (n, 20)), jnp.float32),
        expr=jnp.asarray(rng.normal(0, 1, (n, 10)), jnp.float32),
        rotation=jnp.asarray(rng.normal(0, 0.3, (n, 3)), jnp.float32),
        neck_pose=jnp.asarray(rng.normal(0, 0.1, (n, 3)), jnp.float32),
        jaw_pose=jnp.asarray(rng.normal(0, 0.1, (n, 3)), jnp.float32),
        eyes_pose=jnp.zeros((n, 6), jnp.float32),
        translation=jnp.asarray(rng.normal(0, 0.02, (n, 3)), jnp.float32))
    angle = rng.normal(0, 0.2, n)   # cameras off the axis, rolled, at different distances
    viewmat = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    for i, a in enumerate(angle):
        c, s = np.cos(a), np.sin(a)
        viewmat[i, :3, :3] = np.array([[c, 0, s], [0, -1, 0], [s, 0, -c]]) @ np.array(
            [[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
        viewmat[i, :3, 3] = (0.01 * i, -0.02, 1.0 + 0.1 * i)
    K = np.tile(np.array([[3.4 * WIDTH, 0, 30.0], [0, 3.4 * WIDTH, 34.0], [0, 0, 1]], np.float32), (n, 1, 1))
    return model, params, jnp.asarray(viewmat), jnp.asarray(K)


def test_code_inverts_to_the_same_mesh(model, seed):
    model, params, viewmat, K = _frames(model, seed)
    code = to_camera_code(model, params, viewmat, K, WIDTH)
    blank = params.replace(rotation=jnp.zeros_like(params.rotation), translation=jnp.zeros_like(params.translation))
    back = from_camera_code(model, blank, code, viewmat, K, WIDTH)
    # float32 through Rodrigues, the quaternion and back: ~1e-6 rad, < 1 um on a 0.2 m head
    np.testing.assert_allclose(np.asarray(back.rotation), np.asarray(params.rotation), atol=2e-5)
    np.testing.assert_allclose(np.asarray(flame_forward(model, back).vertices),
                               np.asarray(flame_forward(model, params).vertices), atol=2e-6)


def test_position_is_the_root_joints_pixel_and_scale_its_depth(model, seed):
    model, params, viewmat, K = _frames(model, seed)
    code = np.asarray(to_camera_code(model, params, viewmat, K, WIDTH))
    root = np.asarray(flame_forward(model, params).joints[:, 0])
    cam = np.einsum("bij,bj->bi", np.asarray(viewmat[:, :3, :3]), root) + np.asarray(viewmat[:, :3, 3])
    pixel = np.einsum("bij,bj->bi", np.asarray(K), cam)
    np.testing.assert_allclose(code[:, 3:5], pixel[:, :2] / pixel[:, 2:] / WIDTH - 0.5, atol=1e-5)
    np.testing.assert_allclose(np.exp(code[:, 5]), 3.4 / cam[:, 2], rtol=1e-5)


def test_another_camera_shows_the_head_at_the_same_pixel_and_size(model, seed):
    """Reenactment's use: a code read under one camera, applied under another."""
    model, params, viewmat, K = _frames(model, seed)
    code = to_camera_code(model, params, viewmat, K, WIDTH)
    other_view, other_K = viewmat[::-1], K.at[:, 0, 0].multiply(0.7).at[:, 1, 1].multiply(0.7)
    moved = from_camera_code(model, params, code, other_view, other_K, WIDTH)
    np.testing.assert_allclose(np.asarray(to_camera_code(model, moved, other_view, other_K, WIDTH)),
                               np.asarray(code), atol=2e-5)
