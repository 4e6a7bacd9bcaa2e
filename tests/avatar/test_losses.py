"""Adaptation losses on hand-computed values."""
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.avatar import losses


def test_photometric_is_weighted_l1_plus_dssim():
    a = jnp.full((1, 16, 16, 3), 0.25)
    b = jnp.full((1, 16, 16, 3), 0.75)
    total, parts = losses.photometric_loss(a, b, 0.8, 0.2)
    np.testing.assert_allclose(parts["l1"], 0.5, atol=1e-6)
    same, same_parts = losses.photometric_loss(a, a, 0.8, 0.2)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    np.testing.assert_allclose(total, 0.8 * 0.5 + 0.2 * parts["d_ssim"], atol=1e-6)
    assert float(parts["d_ssim"]) > 0.1


def test_binding_regularizers_hand_values_and_inactive_slots_ignored():
    means = jnp.array([[[2.0, 0, 0], [0.5, 0, 0], [9.0, 0, 0]]])
    log_scales = jnp.log(jnp.array([[[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [9.0, 9.0, 9.0]]]))
    active = jnp.array([True, True, False])
    limit = losses.scale_limits(jnp.array([0.1, 0.4, 0.1]), 0.6, 2.0)  # -> [0.6, 0.8, 0.6]
    position, scale = losses.binding_regularizers(means, log_scales, active, 1.0, limit)
    np.testing.assert_allclose(position, (1.0 + 0.0) / 2, atol=1e-5)
    np.testing.assert_allclose(scale, (0.4 + 0.0) / 2, atol=1e-5)


def test_lip_anchor_averages_squared_offsets_of_lip_gaussians():
    means = jnp.array([[[3.0, 4.0, 0], [1.0, 0, 0], [0, 0, 0]]])
    value = losses.lip_anchor_loss(means, jnp.array([True, False, True]))
    np.testing.assert_allclose(value, 25.0 / 2, atol=1e-5)


def test_lip_region_is_the_ring_between_outer_and_inner_contours():
    n_landmarks = 51
    angles_outer = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    angles_inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts = np.zeros((1, n_landmarks, 3), np.float32)
    pts[0, list(losses.OUTER_LIP), :2] = np.stack([np.cos(angles_outer), np.sin(angles_outer)], 1) * 0.8
    pts[0, list(losses.INNER_LIP), :2] = np.stack([np.cos(angles_inner), np.sin(angles_inner)], 1) * 0.3
    pts[0, :, 2] = 2.0
    viewmat = jnp.eye(4)[None]
    K = jnp.array([[[20.0, 0, 16], [0, 20, 16], [0, 0, 1]]])
    region = np.asarray(losses.lip_region_target(jnp.asarray(pts), viewmat, K, 32, 32))[0]
    assert region[16, 16] == 0        # mouth opening (inside the inner contour)
    assert region[16, 16 + 6] == 1    # on the lips: radius 6 px between 3 and 8
    assert region[16, 16 + 12] == 0   # outside the outer contour
    assert region[0, 0] == 0
