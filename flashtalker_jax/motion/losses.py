"""Losses of the motion models, on padded batches of frames (mask True = real frame).

Motion vectors are `[expr (E) | jaw_pose (3)]` per frame. Mesh-space losses run FLAME with
the identity's shape, the predicted/true expression and jaw, and every other pose zero
(head pose is not predicted from audio), then compare selected vertices in millimetres.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.metrics.lip import MM_PER_M


def masked_mean(values: Float[Array, "B T"], mask: Bool[Array, "B T"]) -> jax.Array:
    weights = mask.astype(values.dtype)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def regression_loss(pred: Float[Array, "B T P"], target: Float[Array, "B T P"],
                    mask: Bool[Array, "B T"]) -> jax.Array:
    """Mean squared error per channel over real frames."""
    return masked_mean(jnp.mean((pred - target) ** 2, axis=-1), mask)


def temporal_huber_loss(pred: Float[Array, "B T P"], target: Float[Array, "B T P"],
                        mask: Bool[Array, "B T"], delta: float) -> jax.Array:
    """Huber loss between adjacent-frame differences of prediction and target (pairs of
    real frames only): penalises jitter and lag without the L2 blow-up on fast onsets."""
    diff = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])
    huber = jnp.where(jnp.abs(diff) <= delta, 0.5 * diff**2, delta * (jnp.abs(diff) - 0.5 * delta))
    return masked_mean(jnp.mean(huber, axis=-1), mask[:, 1:] & mask[:, :-1])


def motion_vertices(flame: FlameModel, motion: Float[Array, "B T P"], shape: Float[Array, "B S"],
                    vertex_ids: Int[Array, "K"]) -> Float[Array, "B T K 3"]:
    """Selected FLAME vertices for [expr | jaw] motion with zero head/neck/eye pose."""
    b, t, p = motion.shape
    frames = motion.reshape(b * t, p)
    n = b * t
    zeros3 = jnp.zeros((n, 3), motion.dtype)
    params = FlameParams(shape=jnp.repeat(shape, t, axis=0), expr=frames[:, :-3], rotation=zeros3,
                         neck_pose=zeros3, jaw_pose=frames[:, -3:], eyes_pose=jnp.zeros((n, 6), motion.dtype),
                         translation=zeros3)
    vertices = flame_forward(flame, params).vertices[:, vertex_ids]
    return vertices.reshape(b, t, -1, 3)


def vertex_loss(flame: FlameModel, pred: Float[Array, "B T P"], target: Float[Array, "B T P"],
                shape: Float[Array, "B S"], vertex_ids: Int[Array, "K"], mask: Bool[Array, "B T"]
                ) -> jax.Array:
    """Mean squared vertex distance (mm^2) over the selected vertices and real frames."""
    err = motion_vertices(flame, pred, shape, vertex_ids) - motion_vertices(flame, target, shape, vertex_ids)
    return masked_mean(jnp.mean(jnp.sum((err * MM_PER_M) ** 2, axis=-1), axis=-1), mask)


def jaw_driven_vertices(flame: FlameModel, min_weight: float = 0.0) -> np.ndarray:
    """Vertex ids with a jaw skinning weight above `min_weight` (FLAME joint 2 = jaw)."""
    return np.nonzero(np.asarray(flame.weights)[:, 2] > min_weight)[0].astype(np.int32)


def vertex_subset_flame(flame: FlameModel, vertex_ids: np.ndarray) -> FlameModel:
    """A FlameModel over vertices `vertex_ids` (in that order) whose forward pass gives
    exactly the full model's posed positions of those vertices, at a fraction of the cost.

    Joints are regressed from the whole shaped mesh, so the subset carries 5 extra
    "joint" vertices placed by the regressor (template J_reg @ v_template, blendshapes
    J_reg @ dirs: regression is linear) and a regressor that reads them. Landmarks are
    dropped (their faces index the full mesh). Output vertices: the first K are the subset.
    """
    ids = np.asarray(vertex_ids)
    reg = np.asarray(flame.J_regressor, np.float64)
    j = reg.shape[0]

    def with_joints(per_vertex, joint_rows):
        return np.concatenate([np.asarray(per_vertex)[ids], joint_rows]).astype(np.float32)

    joint_dirs = lambda dirs: np.einsum("jv,vcl->jcl", reg, np.asarray(dirs, np.float64))
    regressor = np.zeros((j, len(ids) + j), np.float32)
    regressor[:, len(ids):] = np.eye(j)
    return FlameModel(
        v_template=with_joints(flame.v_template, reg @ np.asarray(flame.v_template, np.float64)),
        shape_dirs=with_joints(flame.shape_dirs, joint_dirs(flame.shape_dirs)),
        expr_dirs=with_joints(flame.expr_dirs, joint_dirs(flame.expr_dirs)),
        posedirs=with_joints(flame.posedirs, np.zeros((j,) + flame.posedirs.shape[1:])),
        J_regressor=regressor, weights=with_joints(flame.weights, np.eye(j)),
        faces=np.zeros((0, 3), np.int32), lmk_faces_idx=np.zeros((0,), np.int32),
        lmk_bary_coords=np.zeros((0, 3), np.float32), parents=flame.parents)
