import jax.numpy as jnp
import numpy as np

from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.motion.dataset import Normaliser
from flashtalker_jax.motion.losses import (jaw_driven_vertices, vertex_subset_flame, motion_vertices,
                                           temporal_huber_loss, vertex_loss)
from motion_helpers import random_flame


def test_temporal_huber_by_hand():
    target = jnp.zeros((1, 3, 1))
    pred = jnp.array([[[0.0], [0.05], [1.05]]])  # differences 0.05 (quadratic) and 1.0 (linear)
    mask = jnp.ones((1, 3), bool)
    expected = (0.5 * 0.05**2 + 0.1 * (1.0 - 0.05)) / 2
    np.testing.assert_allclose(temporal_huber_loss(pred, target, mask, 0.1), expected, rtol=1e-6)
    # A pair touching a padded frame is ignored.
    np.testing.assert_allclose(temporal_huber_loss(pred, target, mask.at[0, 2].set(False), 0.1),
                               0.5 * 0.05**2, rtol=1e-6)


def test_motion_vertices_match_flame_forward_and_vertex_loss_in_mm():
    flame = random_flame()
    rng = np.random.default_rng(1)
    motion = jnp.asarray(rng.normal(size=(1, 2, 7)) * 0.1, jnp.float32)
    shape = jnp.asarray(rng.normal(size=(1, 3)), jnp.float32)
    ids = jnp.arange(5, 12)
    got = motion_vertices(flame, motion, shape, ids)
    params = FlameParams.zeros(2, n_shape=3, n_expr=4).replace(
        shape=jnp.repeat(shape, 2, 0), expr=motion[0, :, :4], jaw_pose=motion[0, :, 4:])
    ref = flame_forward(flame, params).vertices[:, 5:12]
    np.testing.assert_allclose(got[0], ref, atol=1e-7)
    shifted = motion.at[..., 0].add(1.0)  # expression 0 moves every vertex by expr_dirs[..., 0]
    per_vertex = np.sum((np.asarray(flame.expr_dirs)[5:12, :, 0] * 1000) ** 2, axis=-1).mean()
    loss = vertex_loss(flame, shifted, motion, shape, ids, jnp.ones((1, 2), bool))
    np.testing.assert_allclose(loss, per_vertex, rtol=1e-3)  # float32 differences of ~1 mm


def test_jaw_driven_vertices_and_stats(tmp_path):
    flame = random_flame(num_vertices=30)
    np.testing.assert_array_equal(jaw_driven_vertices(flame), np.arange(15, 30))
    stats = Normaliser.of(np.array([[0.0, 1.0], [2.0, 1.0]]))
    np.testing.assert_allclose(stats.std, [1.0, 1e-3])
    stats.save(tmp_path / "s.npz")
    back = Normaliser.load(tmp_path / "s.npz")
    np.testing.assert_allclose(back.denormalise(back.normalise(np.array([3.0, 2.0]))), [3.0, 2.0], rtol=1e-6)


def test_vertex_subset_flame_is_exact():
    flame = random_flame(num_vertices=40)
    ids = np.array([3, 17, 25, 39, 20])
    subset = vertex_subset_flame(flame, ids)
    rng = np.random.default_rng(2)
    params = FlameParams.zeros(3, n_shape=3, n_expr=4).replace(
        shape=jnp.asarray(rng.normal(size=(3, 3)), jnp.float32), expr=jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
        jaw_pose=jnp.asarray(rng.normal(size=(3, 3)) * 0.2, jnp.float32),
        neck_pose=jnp.asarray(rng.normal(size=(3, 3)) * 0.2, jnp.float32))
    full = flame_forward(flame, params).vertices[:, ids]
    part = flame_forward(subset, params).vertices[:, :len(ids)]
    # float32 LBS on ~5 cm coordinates: 1e-6 m absolute (sub-micrometre).
    np.testing.assert_allclose(part, full, atol=1e-6)
