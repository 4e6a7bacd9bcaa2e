"""FLAME forward pass: blendshapes, pose correctives, linear blend skinning.

Mirrors smplx 0.1.28 `lbs` (the reference the parity tests run against), including its
quirk of adding 1e-8 to the rotation vector before taking the angle, which also keeps the
gradient finite at the zero pose.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from flashtalker_jax.flame.landmarks import flame_landmarks
from flashtalker_jax.flame.model import FlameModel, FlameOutput, FlameParams


def batch_rodrigues(rot_vecs: jax.Array) -> jax.Array:
    """Axis-angle (N, 3) -> rotation matrices (N, 3, 3), smplx's formula."""
    angle = jnp.linalg.norm(rot_vecs + 1e-8, axis=-1, keepdims=True)
    rx, ry, rz = jnp.split(rot_vecs / angle, 3, axis=-1)
    zeros = jnp.zeros_like(rx)
    K = jnp.concatenate([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], axis=-1)
    K = K.reshape(-1, 3, 3)
    cos, sin = jnp.cos(angle)[:, :, None], jnp.sin(angle)[:, :, None]
    ident = jnp.eye(3, dtype=rot_vecs.dtype)[None]
    return ident + sin * K + (1.0 - cos) * (K @ K)


def rigid_transform(rot_mats: jax.Array, joints: jax.Array, parents: tuple):
    """Chain joint rotations down the kinematic tree.

    rot_mats (B, J, 3, 3), joints (B, J, 3) rest positions -> posed joints (B, J, 3) and
    relative transforms (B, J, 4, 4) mapping rest-pose points to posed points.
    """
    B, J = joints.shape[:2]
    rel_joints = joints - jnp.concatenate(
        [jnp.zeros_like(joints[:, :1]), joints[:, list(parents[1:])]], axis=1)
    top = jnp.concatenate([rot_mats, rel_joints[..., None]], axis=-1)
    bottom = jnp.broadcast_to(jnp.array([0, 0, 0, 1], joints.dtype), (B, J, 1, 4))
    local = jnp.concatenate([top, bottom], axis=-2)
    chain = [local[:, 0]]
    for j in range(1, J):
        chain.append(chain[parents[j]] @ local[:, j])
    transforms = jnp.stack(chain, axis=1)
    posed_joints = transforms[:, :, :3, 3]
    shift = jnp.einsum("bjmn,bjn->bjm", transforms[:, :, :3, :3], joints)
    rel = transforms.at[:, :, :3, 3].add(-shift)
    return posed_joints, rel


def _check_params(model: FlameModel, params: FlameParams) -> int:
    B = params.rotation.shape[0]
    chex.assert_shape([params.rotation, params.neck_pose, params.jaw_pose, params.translation],
                      (B, 3))
    chex.assert_shape(params.eyes_pose, (B, 6))
    chex.assert_rank([params.shape, params.expr], 2)
    if params.shape.shape[1] > model.n_shape or params.expr.shape[1] > model.n_expr:
        raise ValueError(
            f"params have {params.shape.shape[1]} shape / {params.expr.shape[1]} expression "
            f"components; the model has {model.n_shape} / {model.n_expr}")
    return B


def shaped_template(model: FlameModel, params: FlameParams) -> jax.Array:
    """Template plus shape and expression blendshapes and the static offset: (B, V, 3)."""
    n_s, n_e = params.shape.shape[1], params.expr.shape[1]
    betas = jnp.concatenate([params.shape, params.expr], axis=1)
    dirs = jnp.concatenate([model.shape_dirs[..., :n_s], model.expr_dirs[..., :n_e]], axis=-1)
    v_shaped = model.v_template[None] + jnp.einsum("bl,vcl->bvc", betas, dirs)
    if params.static_offset is not None:
        v_shaped = v_shaped + params.static_offset
    return v_shaped


def full_pose(params: FlameParams) -> jax.Array:
    """(B, 5, 3) axis-angle: global, neck, jaw, left eye, right eye."""
    pose = jnp.concatenate([params.rotation, params.neck_pose, params.jaw_pose,
                            params.eyes_pose], axis=1)
    return pose.reshape(pose.shape[0], -1, 3)


def flame_forward(model: FlameModel, params: FlameParams) -> FlameOutput:
    """Posed FLAME mesh, joints and landmarks for a batch of frames.

    model: FlameModel (pass it as a jit argument); params: FlameParams with batch B.
    Returns FlameOutput(vertices (B, V, 3), joints (B, 5, 3), landmarks (B, L, 3)).
    """
    B = _check_params(model, params)
    v_shaped = shaped_template(model, params)
    joints = jnp.einsum("bvc,jv->bjc", v_shaped, model.J_regressor)
    pose = full_pose(params)
    rot_mats = batch_rodrigues(pose.reshape(-1, 3)).reshape(B, -1, 3, 3)
    ident = jnp.eye(3, dtype=rot_mats.dtype)
    pose_feature = (rot_mats[:, 1:] - ident).reshape(B, -1)
    v_posed = v_shaped + jnp.einsum("bp,vcp->bvc", pose_feature, model.posedirs)
    posed_joints, rel = rigid_transform(rot_mats, joints, model.parents)
    T = jnp.einsum("vj,bjmn->bvmn", model.weights, rel)
    vertices = jnp.einsum("bvmn,bvn->bvm", T[..., :3, :3], v_posed) + T[..., :3, 3]
    landmarks = flame_landmarks(model, vertices, rot_mats[:, 0])
    shift = params.translation[:, None, :]
    return FlameOutput(vertices=vertices + shift, joints=posed_joints + shift,
                       landmarks=landmarks + shift)
