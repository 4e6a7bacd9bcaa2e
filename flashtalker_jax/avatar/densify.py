"""Binding-aware densification and pruning for the per-face placement (GaussianAvatars),
on a static capacity so the train step stays jitted.

Statistic (3DGS): for every Gaussian, the norm of the gradient of the loss with respect
to a shift of its mean parallel to the image plane, in half-image units (pixels / (W/2),
the NDC-like units of 3DGS's 0.0002 threshold), summed over the views where it is
visible (in front of the camera, centre inside the image) and divided by that count.

Every `interval` steps in [start, stop) (`densify_and_prune`):
- grow: active Gaussians whose mean statistic reaches `grad_threshold`, largest first,
  as many as free slots remain. A Gaussian larger than `split_scale` (largest local
  scale, triangle units) is split: it and its new copy are moved to two points drawn
  from the Gaussian itself (local frame) and their scales divided by `split_shrink`; a
  smaller one is cloned (an exact copy: the two drift apart as they train). The copy
  inherits the parent's triangle, barycentrics, region, lip flag and every template
  attribute (features included, so the deformer moves it like its parent);
- prune: active Gaussians with template opacity below `min_opacity` or largest local
  scale above `max_scale` are deactivated, except that every triangle keeping no other
  active Gaussian keeps its most opaque one (at least one Gaussian per face, so the
  binding never leaves a hole in the mesh);
- the statistics restart from zero.
Every `opacity_reset_interval` steps below `stop`, template opacities above
`opacity_reset_value` are lowered to it (3DGS's opacity reset).

Slots are allocated once, in order: slots [0, n_used) have been used, [n_used, C) are
fresh. A pruned slot is retired, never reused. A fresh slot has been inactive since the
start, so its gradient, and therefore its Adam moments and its trained parameter, are
exactly zero: a new Gaussian starts from a freshly initialised optimiser state without
the task touching the optimiser. The cost is that `capacity` bounds the Gaussians
created over the whole run, not the number alive at once.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
from jaxtyping import Array, Bool, Float, Int

from flashtalker_jax.avatar.quaternion import quat_normalize, quat_to_rotmat
from flashtalker_jax.errors import ConfigError

# Template attributes (true scale) a new Gaussian copies from its parent.
ATTRIBUTES = ("local_means", "local_log_scales", "local_quats", "opacity_logits", "color_logits",
              "features")
# Binding arrays a new Gaussian copies from its parent.
BINDING = ("face_ids", "barycentrics", "region", "is_lip", "init_scale")


@dataclasses.dataclass(frozen=True)
class DensifyConfig:
    interval: int
    start: int
    stop: int
    grad_threshold: float
    split_scale: float
    split_shrink: float
    min_opacity: float
    max_scale: float
    opacity_reset_interval: int
    opacity_reset_value: float

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict) -> "DensifyConfig":
        """From `task.densify` (its `enabled` flag is the caller's business)."""
        out = cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls)})
        if out.interval < 1 or out.start < 0 or out.stop < out.start:
            raise ConfigError(f"densify.interval={out.interval}, start={out.start}, stop={out.stop}: "
                              "need interval >= 1 and 0 <= start <= stop")
        if out.split_shrink <= 1.0:
            raise ConfigError(f"densify.split_shrink={out.split_shrink} must be > 1")
        if not 0.0 < out.opacity_reset_value < 1.0:
            raise ConfigError(f"densify.opacity_reset_value={out.opacity_reset_value} must be in (0, 1)")
        return out


def image_plane_grad_norms(world_grads: Float[Array, "B N 3"], means: Float[Array, "B N 3"],
                           viewmat: Float[Array, "B 4 4"], K: Float[Array, "B 3 3"], width: int,
                           height: int, near: float = 0.01
                           ) -> tuple[Float[Array, "N"], Float[Array, "N"]]:
    """(sum over views of the image-plane gradient norm, number of views where visible).

    A shift of d pixels along x moves the camera-space mean by d z / fx, so the gradient
    per pixel is (dL/dx_cam) z / fx with dL/dx_cam = R dL/dworld; times W/2 for
    half-image units (same along y).
    """
    rot, trans = viewmat[:, :3, :3], viewmat[:, :3, 3]
    cam = jnp.einsum("bij,bnj->bni", rot, means) + trans[:, None]
    grad_cam = jnp.einsum("bij,bnj->bni", rot, world_grads)
    z = cam[..., 2]
    fx, fy = K[:, 0, 0][:, None], K[:, 1, 1][:, None]
    gx = grad_cam[..., 0] * z / fx * (width / 2)
    gy = grad_cam[..., 1] * z / fy * (height / 2)
    safe_z = jnp.maximum(z, near)
    px = fx * cam[..., 0] / safe_z + K[:, 0, 2][:, None]
    py = fy * cam[..., 1] / safe_z + K[:, 1, 2][:, None]
    visible = (z > near) & (px >= 0) & (px < width) & (py >= 0) & (py < height)
    norm = jnp.where(visible, jnp.sqrt(gx * gx + gy * gy), 0.0)
    return jnp.sum(norm, 0), jnp.sum(visible, 0).astype(jnp.float32)


def _split_samples(key: Array, means: Float[Array, "N 3"], log_scales: Float[Array, "N 3"],
                   quats: Float[Array, "N 4"]) -> tuple[Array, Array]:
    """Two points per Gaussian drawn from it (local frame): mu + R(q) (exp(s) * eps)."""
    eps = jax.random.normal(key, (2,) + means.shape)
    rot = quat_to_rotmat(quat_normalize(quats))
    offsets = jnp.einsum("nij,knj->kni", rot, jnp.exp(log_scales) * eps)
    return means + offsets[0], means + offsets[1]


def grow(values: dict[str, Array], binding: dict[str, Array], active: Bool[Array, "C"],
         n_used: Int[Array, ""], grad_mean: Float[Array, "C"], key: Array, cfg: DensifyConfig
         ) -> tuple[dict[str, Array], dict[str, Array], Bool[Array, "C"], Int[Array, ""]]:
    """Clone or split the Gaussians with large gradients into fresh slots (module docstring)."""
    capacity = active.shape[0]
    candidate = active & (grad_mean >= cfg.grad_threshold)
    order = jnp.argsort(jnp.where(candidate, -grad_mean, jnp.inf))  # candidates first, largest first
    rank = jnp.arange(capacity)
    n_new = jnp.minimum(jnp.sum(candidate), capacity - n_used)
    made = rank < n_new                        # rank r makes a child from parent order[r]
    parent = order
    child = jnp.where(made, n_used + rank, capacity)  # out of range: dropped by the scatter
    big = jnp.max(values["local_log_scales"], -1) > jnp.log(cfg.split_scale)
    split = made & big[parent]

    def scatter(array, rows):
        return array.at[child].set(rows, mode="drop")

    new_values = {name: scatter(v, v[parent]) for name, v in values.items()}
    new_binding = {name: scatter(b, b[parent]) for name, b in binding.items()}
    first, second = _split_samples(key, values["local_means"][parent],
                                   values["local_log_scales"][parent], values["local_quats"][parent])
    parent_rows = jnp.where(split, parent, capacity)  # only split parents change in place
    child_rows = jnp.where(split, child, capacity)
    shrunk = values["local_log_scales"][parent] - jnp.log(cfg.split_shrink)
    means = new_values["local_means"].at[parent_rows].set(first, mode="drop")
    means = means.at[child_rows].set(second, mode="drop")
    log_scales = new_values["local_log_scales"].at[parent_rows].set(shrunk, mode="drop")
    log_scales = log_scales.at[child_rows].set(shrunk, mode="drop")
    new_values.update(local_means=means, local_log_scales=log_scales)
    new_active = active.at[child].set(True, mode="drop")
    return new_values, new_binding, new_active, n_used + n_new.astype(n_used.dtype)


def prune(values: dict[str, Array], face_ids: Int[Array, "C"], active: Bool[Array, "C"],
          n_faces: int, cfg: DensifyConfig) -> Bool[Array, "C"]:
    """The new active mask: low-opacity and over-large Gaussians off, at least one kept per
    face that had one (its most opaque)."""
    logit = values["opacity_logits"]
    too_faint = jax.nn.sigmoid(logit) < cfg.min_opacity
    too_big = jnp.max(values["local_log_scales"], -1) > jnp.log(cfg.max_scale)
    keep = active & ~(too_faint | too_big)
    face_kept = jax.ops.segment_max(keep.astype(jnp.int32), face_ids, n_faces) > 0
    masked = jnp.where(active, logit, -jnp.inf)
    best_logit = jax.ops.segment_max(masked, face_ids, n_faces)
    # The most opaque active Gaussian of a face left empty; ties: the lowest slot.
    is_best = active & (masked == best_logit[face_ids])
    first_best = jax.ops.segment_min(jnp.where(is_best, jnp.arange(active.shape[0]), active.shape[0]),
                                     face_ids, n_faces)
    rescue = active & ~face_kept[face_ids] & (jnp.arange(active.shape[0]) == first_best[face_ids])
    return keep | rescue


def reset_opacity(opacity_logits: Float[Array, "C"], value: float) -> Float[Array, "C"]:
    return jnp.minimum(opacity_logits, jnp.log(value / (1.0 - value)))


def densify_step(values: dict[str, Array], binding: dict[str, Array], active: Bool[Array, "C"],
                 stats: dict[str, Array], key: Array, n_faces: int, cfg: DensifyConfig
                 ) -> tuple[dict[str, Array], dict[str, Array], Bool[Array, "C"], dict[str, Array]]:
    """One step's bookkeeping after its statistics were added to `stats` (grad_sum (C,),
    grad_count (C,), n_used (), clock () = steps before this one): grow and prune on
    densification steps, then the opacity reset (module docstring)."""
    step = stats["clock"] + 1
    densify_now = (step >= cfg.start) & (step < cfg.stop) & (step % cfg.interval == 0)

    def run(operand):
        values, binding, active, stats = operand
        grad_mean = stats["grad_sum"] / jnp.maximum(stats["grad_count"], 1.0)
        grad_mean = jnp.where(stats["grad_count"] > 0, grad_mean, 0.0)
        values, binding, active, n_used = grow(values, binding, active, stats["n_used"], grad_mean,
                                               key, cfg)
        active = prune(values, binding["face_ids"], active, n_faces, cfg)
        zeros = jnp.zeros_like(stats["grad_sum"])
        return values, binding, active, dict(stats, grad_sum=zeros, grad_count=zeros, n_used=n_used)

    values, binding, active, stats = jax.lax.cond(densify_now, run, lambda operand: operand,
                                                  (values, binding, active, stats))
    if cfg.opacity_reset_interval > 0:
        reset_now = (step < cfg.stop) & (step % cfg.opacity_reset_interval == 0)
        logits = values["opacity_logits"]
        values = dict(values, opacity_logits=jnp.where(
            reset_now, reset_opacity(logits, cfg.opacity_reset_value), logits))
    return values, binding, active, dict(stats, clock=step)
