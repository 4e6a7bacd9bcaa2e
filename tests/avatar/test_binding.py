"""Binding math (GaussianAvatars triangle frames) on a small synthetic mesh.

Tolerances: float32 arithmetic on unit-scale coordinates, a few ulps per operation over
~20 operations -> 1e-5 absolute (1e-4 where a rotation of coordinates up to 3 is involved).
"""
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from flashtalker_jax.avatar.binding import local_to_world, triangle_frames
from flashtalker_jax.avatar.quaternion import quat_to_rotmat, rotmat_to_quat


def _mesh(seed=0, n_vertices=40, n_faces=60):
    rng = np.random.default_rng(seed)
    vertices = rng.normal(size=(n_vertices, 3)).astype(np.float32)
    faces = np.stack([rng.choice(n_vertices, 3, replace=False) for _ in range(n_faces)]).astype(np.int32)
    return jnp.asarray(vertices), jnp.asarray(faces)


def _local(n, seed=1):
    rng = np.random.default_rng(seed)
    face_ids = rng.integers(0, 60, n).astype(np.int32)
    bary = rng.dirichlet(np.ones(3), n).astype(np.float32)
    means = rng.normal(size=(n, 3)).astype(np.float32) * 0.3
    log_scales = rng.normal(size=(n, 3)).astype(np.float32) * 0.5 - 1.0
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    return tuple(jnp.asarray(a) for a in (face_ids, bary, means, log_scales, quats))


def test_frames_are_orthonormal_right_handed_and_match_a_hand_computed_triangle():
    vertices, faces = _mesh()
    rot, k = triangle_frames(vertices, faces)
    eye = jnp.einsum("fji,fjk->fik", rot, rot)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-5)
    np.testing.assert_allclose(jnp.linalg.det(rot), 1.0, atol=1e-5)
    # Right triangle in the xy plane: edge along +x (length 2), apex at (0.5, 1, 0).
    tri = jnp.array([[0.0, 0, 0], [2.0, 0, 0], [0.5, 1.0, 0]])
    rot1, k1 = triangle_frames(tri, jnp.array([[0, 1, 2]]))
    # a0 = +x, normal a1 = +z, a2 = a0 x a1 = -y (columns of R).
    np.testing.assert_allclose(rot1[0], np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), atol=1e-6)
    np.testing.assert_allclose(k1[0], (2.0 + 1.0) / 2, atol=1e-6)


def test_gaussians_follow_the_mesh_exactly_under_rigid_motion():
    vertices, faces = _mesh()
    face_ids, bary, means, log_scales, quats = _local(200)
    rot = Rotation.from_rotvec([0.4, -1.1, 0.7])
    r = jnp.asarray(rot.as_matrix(), jnp.float32)
    t = jnp.array([0.3, -2.0, 1.5])
    moved = vertices @ r.T + t
    m0, s0, q0 = local_to_world(vertices, faces, face_ids, bary, means, log_scales, quats)
    m1, s1, q1 = local_to_world(moved, faces, face_ids, bary, means, log_scales, quats)
    np.testing.assert_allclose(m1, m0 @ r.T + t, atol=1e-4)
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    np.testing.assert_allclose(quat_to_rotmat(q1), r @ quat_to_rotmat(q0), atol=1e-5)


def test_world_scale_and_offset_scale_with_triangle_size():
    vertices, faces = _mesh()
    face_ids, bary, means, log_scales, quats = _local(50)
    m0, s0, _ = local_to_world(vertices, faces, face_ids, bary, means, log_scales, quats)
    m1, s1, _ = local_to_world(2.5 * vertices, faces, face_ids, bary, means, log_scales, quats)
    np.testing.assert_allclose(s1, 2.5 * s0, rtol=1e-5)
    np.testing.assert_allclose(m1, 2.5 * m0, atol=1e-4)


def test_zero_offset_sits_on_the_barycentric_point_and_batches_over_frames():
    vertices, faces = _mesh()
    face_ids, bary, _, log_scales, quats = _local(30)
    frames = jnp.stack([vertices, vertices * 1.3 + 0.1])
    means, _, _ = local_to_world(frames, faces, face_ids, bary, jnp.zeros((30, 3)), log_scales, quats)
    expected = np.einsum("fnjc,nj->fnc", np.asarray(frames)[:, np.asarray(faces)[face_ids]], bary)
    np.testing.assert_allclose(means, expected, atol=1e-5)
    assert means.shape == (2, 30, 3)


def test_rotmat_to_quat_matches_scipy_including_near_180_degrees():
    rotvecs = np.concatenate([np.random.default_rng(0).normal(size=(64, 3)),
                              np.array([[np.pi - 1e-4, 0, 0], [0, np.pi, 0], [0, 0, 0]])])
    mats = Rotation.from_rotvec(rotvecs).as_matrix().astype(np.float32)
    q = np.asarray(rotmat_to_quat(jnp.asarray(mats)))
    ref = Rotation.from_matrix(mats).as_quat(canonical=True)[:, [3, 0, 1, 2]]  # xyzw -> wxyz
    same = np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1))
    assert same.max() < 1e-5, same.max()
    np.testing.assert_allclose(quat_to_rotmat(jnp.asarray(q)), mats, atol=1e-5)


def test_binding_is_differentiable_wrt_vertices_and_local_params():
    vertices, faces = _mesh()
    face_ids, bary, means, log_scales, quats = _local(20)

    def total(v, m):
        out = local_to_world(v, faces, face_ids, bary, m, log_scales, quats)
        return sum(jnp.sum(o) for o in out)

    gv, gm = jax.grad(total, argnums=(0, 1))(vertices, means)
    assert np.isfinite(gv).all() and np.isfinite(gm).all() and np.abs(gm).sum() > 0
