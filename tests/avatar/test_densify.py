"""Binding-aware densification and pruning (avatar/densify.py) on small explicit arrays:
at least one Gaussian per face survives any pruning, the count never exceeds the static
capacity, a clone inherits its parent's binding and follows the posed mesh, a split
shrinks scales, and the image-plane gradient statistic is the gradient with respect to a
pixel shift. Integer/boolean results are exact; float comparisons use 1e-6 (float32
arithmetic on values of order 1)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.avatar import densify
from flashtalker_jax.avatar.binding import local_to_world
from flashtalker_jax.avatar.quaternion import quat_to_rotmat
from flashtalker_jax.errors import ConfigError

CAPACITY, N_FACES, PER_FACE = 48, 8, 3


def config(**changes):
    base = dict(interval=1, start=0, stop=100, grad_threshold=0.5, split_scale=0.6, split_shrink=1.6,
                min_opacity=0.005, max_scale=3.0, opacity_reset_interval=0, opacity_reset_value=0.01)
    return densify.DensifyConfig(**{**base, **changes})


def arrays(seed=0):
    """PER_FACE active Gaussians on each of N_FACES faces, the rest of CAPACITY free."""
    rng = np.random.default_rng(seed)
    n = N_FACES * PER_FACE
    pad = CAPACITY - n

    def padded(a):
        return jnp.asarray(np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)]))

    values = {
        "local_means": padded(rng.normal(size=(n, 3)).astype(np.float32) * 0.2),
        "local_log_scales": padded(np.log(rng.uniform(0.1, 1.0, (n, 3))).astype(np.float32)),
        "local_quats": padded(rng.normal(size=(n, 4)).astype(np.float32)),
        "opacity_logits": padded(rng.normal(size=n).astype(np.float32)),
        "color_logits": padded(rng.normal(size=(n, 3)).astype(np.float32)),
        "features": padded(rng.normal(size=(n, 5)).astype(np.float32)),
    }
    bary = rng.dirichlet(np.ones(3), n).astype(np.float32)
    binding = {"face_ids": padded(np.repeat(np.arange(N_FACES), PER_FACE).astype(np.int32)),
               "barycentrics": padded(bary), "region": padded(rng.integers(0, 3, n).astype(np.int32)),
               "is_lip": padded(rng.random(n) < 0.5), "init_scale": padded(rng.uniform(0.2, 1, n).astype(np.float32))}
    active = jnp.arange(CAPACITY) < n
    return values, binding, active, jnp.asarray(n, jnp.int32)


def test_pruning_everything_keeps_the_most_opaque_gaussian_of_every_face():
    values, binding, active, _ = arrays()
    kept = densify.prune(values, binding["face_ids"], active, N_FACES, config(min_opacity=1.0))
    kept, faces = np.asarray(kept), np.asarray(binding["face_ids"])
    logits = np.asarray(values["opacity_logits"])
    for face in range(N_FACES):
        on_face = np.flatnonzero(np.asarray(active) & (faces == face))
        assert kept[on_face].sum() == 1
        assert kept[on_face[np.argmax(logits[on_face])]]
    assert not kept[~np.asarray(active)].any()


def test_pruning_removes_faint_and_large_gaussians_only_where_others_remain():
    values, binding, active, _ = arrays(1)
    logits = np.asarray(values["opacity_logits"]).copy()
    logits[0] = -12.0   # faint, face 0 keeps two others
    values["opacity_logits"] = jnp.asarray(logits)
    scales = np.asarray(values["local_log_scales"]).copy()
    scales[4] = np.log(5.0)  # over-large, face 1 keeps two others
    values["local_log_scales"] = jnp.asarray(scales)
    kept = np.asarray(densify.prune(values, binding["face_ids"], active, N_FACES, config()))
    assert not kept[0] and not kept[4]
    assert kept[:N_FACES * PER_FACE].sum() == N_FACES * PER_FACE - 2


def test_growth_never_exceeds_capacity_and_children_inherit_their_parents():
    values, binding, active, n_used = arrays(2)
    grad = jnp.where(active, jnp.linspace(1.0, 2.0, CAPACITY), 0.0)  # every active one qualifies
    key = jax.random.key(0)
    for round_ in range(4):
        parents_before = {k: np.asarray(v) for k, v in binding.items()}
        used_before = int(n_used)
        values, binding, active, n_used = densify.grow(values, binding, active, n_used, grad, key, config())
        assert int(n_used) <= CAPACITY and int(np.sum(active)) <= CAPACITY
        grad = jnp.where(active, 1.0, 0.0)
        new = np.arange(used_before, int(n_used))
        if round_ == 0:  # 24 active, 24 free: everyone gets a child, the largest gradient first
            assert len(new) == N_FACES * PER_FACE
            order = np.argsort(-np.linspace(1.0, 2.0, CAPACITY)[:len(new)], kind="stable")
            for name, before in parents_before.items():
                np.testing.assert_array_equal(np.asarray(binding[name])[new], before[order], err_msg=name)
    assert int(n_used) == CAPACITY and bool(np.all(active))


def _two_triangles():
    vertices = jnp.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.3]], jnp.float32)
    faces = jnp.array([[0, 1, 2], [1, 3, 2]], jnp.int32)
    return vertices, faces


def test_a_clone_copies_its_parent_and_follows_the_posed_mesh():
    values, binding, active, n_used = arrays(3)
    values["local_log_scales"] = jnp.full_like(values["local_log_scales"], np.log(0.2))  # small: clone
    binding["face_ids"] = binding["face_ids"] % 2
    grad = jnp.zeros(CAPACITY).at[5].set(1.0)
    values2, binding2, active2, n_used2 = densify.grow(values, binding, active, n_used, grad,
                                                      jax.random.key(1), config())
    child = int(n_used)
    assert int(n_used2) == child + 1 and bool(active2[child])
    for name in values:
        np.testing.assert_array_equal(values2[name][child], values[name][5], err_msg=name)
        np.testing.assert_array_equal(values2[name][5], values[name][5], err_msg=name)
    vertices, faces = _two_triangles()
    angle = 0.7
    rot = jnp.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = vertices @ rot.T + jnp.array([0.3, -2.0, 1.5])
    for verts in (vertices, moved):
        means, scales, _ = local_to_world(verts, faces, binding2["face_ids"], binding2["barycentrics"],
                                          values2["local_means"], values2["local_log_scales"],
                                          values2["local_quats"])
        np.testing.assert_allclose(means[child], means[5], atol=1e-6)
        np.testing.assert_allclose(scales[child], scales[5], rtol=1e-6)
    parent_world = local_to_world(vertices, faces, binding2["face_ids"], binding2["barycentrics"],
                                  values2["local_means"], values2["local_log_scales"],
                                  values2["local_quats"])[0][child]
    moved_world = local_to_world(moved, faces, binding2["face_ids"], binding2["barycentrics"],
                                 values2["local_means"], values2["local_log_scales"],
                                 values2["local_quats"])[0][child]
    np.testing.assert_allclose(moved_world, rot @ parent_world + jnp.array([0.3, -2.0, 1.5]), atol=1e-5)


def test_a_split_shrinks_both_halves_and_draws_them_from_the_parent():
    values, binding, active, n_used = arrays(4)
    values["local_log_scales"] = jnp.full_like(values["local_log_scales"], np.log(1.0))  # big: split
    grad = jnp.zeros(CAPACITY).at[7].set(1.0)
    new, _, _, _ = densify.grow(values, binding, active, n_used, grad, jax.random.key(2), config())
    child = int(n_used)
    shrunk = np.full(3, -np.log(1.6), np.float32)
    np.testing.assert_allclose(new["local_log_scales"][7], shrunk, atol=1e-6)
    np.testing.assert_allclose(new["local_log_scales"][child], shrunk, atol=1e-6)
    rot = np.asarray(quat_to_rotmat(values["local_quats"][7] / jnp.linalg.norm(values["local_quats"][7])))
    for row in (7, child):  # offsets from the parent's mean, in its own axes, are N(0, 1) draws
        eps = rot.T @ np.asarray(new["local_means"][row] - values["local_means"][7])
        assert np.all(np.abs(eps) < 5.0) and np.any(np.abs(eps) > 1e-3)
    assert not np.allclose(new["local_means"][7], new["local_means"][child])


def test_densify_step_runs_on_schedule_and_resets_opacity():
    values, binding, active, n_used = arrays(5)
    stats = {"grad_sum": jnp.where(active, 3.0, 0.0), "grad_count": jnp.where(active, 2.0, 0.0),
             "n_used": n_used, "clock": jnp.asarray(3, jnp.int32)}
    cfg = config(interval=5, start=0, opacity_reset_interval=4, opacity_reset_value=0.2)
    # step 4: no densification (4 % 5), opacity reset (4 % 4)
    v, _, a, s = densify.densify_step(values, binding, active, stats, jax.random.key(0), N_FACES, cfg)
    assert int(s["n_used"]) == int(n_used) and int(s["clock"]) == 4
    assert float(jnp.max(jax.nn.sigmoid(v["opacity_logits"]))) <= 0.2 + 1e-6
    np.testing.assert_array_equal(s["grad_sum"], stats["grad_sum"])
    # step 5: densification (mean gradient 1.5 >= 0.5), statistics restart
    stats = dict(stats, clock=jnp.asarray(4, jnp.int32))
    v, _, a, s = densify.densify_step(values, binding, active, stats, jax.random.key(0), N_FACES, cfg)
    assert int(s["n_used"]) == CAPACITY and int(jnp.sum(a)) == CAPACITY
    assert float(jnp.max(s["grad_sum"])) == 0.0 and float(jnp.max(s["grad_count"])) == 0.0


def test_image_plane_gradient_is_the_gradient_of_a_pixel_shift():
    """L = sum w . pixel(mean): its gradient per pixel is w, so the statistic is |w| W/2."""
    rng = np.random.default_rng(6)
    width, height = 40, 30
    means = jnp.asarray(rng.normal(size=(1, 5, 3)) * 0.1 + [0, 0, 2], jnp.float32)
    viewmat = jnp.eye(4)[None]
    K = jnp.asarray([[[50.0, 0, 20], [0, 60.0, 15], [0, 0, 1]]])
    w = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)

    def loss(m):
        pix = m[0, :, :2] / m[0, :, 2:] * jnp.array([50.0, 60.0]) + jnp.array([20.0, 15.0])
        return jnp.sum(w * pix)

    grads = jax.grad(loss)(means)
    total, count = densify.image_plane_grad_norms(grads, means, viewmat, K, width, height)
    expected = np.linalg.norm(np.asarray(w) * [width / 2, height / 2], axis=1)
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    np.testing.assert_array_equal(count, np.ones(5))
    behind = means.at[0, 0, 2].set(-1.0)
    _, count = densify.image_plane_grad_norms(grads, behind, viewmat, K, width, height)
    assert float(count[0]) == 0.0


def test_bad_schedule_is_a_config_error():
    import ml_collections

    from flashtalker_jax.config import load_config

    cfg = load_config("adapt_gaussianavatars").task.densify
    densify.DensifyConfig.from_config(cfg)
    bad = ml_collections.ConfigDict(cfg.to_dict())
    bad.split_shrink = 1.0
    with pytest.raises(ConfigError, match="split_shrink"):
        densify.DensifyConfig.from_config(bad)
