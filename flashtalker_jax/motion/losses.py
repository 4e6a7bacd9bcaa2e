"""Losses of the motion models, on padded batches of frames (mask True = real frame).

Motion vectors are `[expr (E) | jaw_pose (3)]` per frame. Mesh-space losses run FLAME with
the identity's shape, the predicted/true expression and jaw, and every other pose zero
(head pose is not predicted from audio), then compare selected vertices in millimetres.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameModel, FlameParams

MM_PER_M = 1000.0


@dataclasses.dataclass(frozen=True)
class MotionStats:
    """Per-channel mean and std of motion vectors (P,), for normalising model targets."""
    mean: np.ndarray
    std: np.ndarray

    def normalise(self, motion):
        return (motion - self.mean) / self.std

    def denormalise(self, motion):
        return motion * self.std + self.mean

    def save(self, path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @staticmethod
    def load(path) -> "MotionStats":
        with np.load(path) as f:
            return MotionStats(mean=f["mean"].astype(np.float32), std=f["std"].astype(np.float32))

    @staticmethod
    def of(motion: np.ndarray, min_std: float = 1e-3) -> "MotionStats":
        """From (N, P) frames; channels that barely move get std min_std (no blow-up)."""
        return MotionStats(mean=motion.mean(0).astype(np.float32),
                           std=np.maximum(motion.std(0), min_std).astype(np.float32))


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
