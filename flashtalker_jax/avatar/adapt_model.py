"""The model an adaptation trains: the Gaussian avatar, the identity's FLAME arrays, and
per-frame FLAME / per-camera refinements (GaussianAvatars, GaussianHeadTalk).

- `FlameArrays` keeps the identity's FLAME model as non-trained variables, with the
  shape blendshapes and static offset already applied to the template (the identity is
  fixed during adaptation), so checkpoints and exported avatars are self-contained.
- `FrameRefinement` holds zero-initialised corrections of every training frame's tracked
  FLAME expression, global/neck/jaw/eye rotations and translation, and of every camera's
  extrinsics (axis-angle + translation applied on the camera side). The adaptation first
  trains with them frozen, then jointly (`refine` flag per batch row).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.avatar import densify
from flashtalker_jax.avatar.avatar import Binding, DensifyStat, GaussianAvatar
from flashtalker_jax.flame.lbs import batch_rodrigues
from flashtalker_jax.flame.model import FlameModel, FlameParams

REFINED_KEYS = {"expr": None, "rotation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6,
                "translation": 3}


class FlameConst(nnx.Variable):
    """A fixed array of the identity's FLAME model."""


def personalise(model: FlameModel, shape: np.ndarray, static_offset: np.ndarray | None) -> FlameModel:
    """The model with the identity's shape (and static offset) baked into the template and
    no shape components left."""
    template = model.v_template + jnp.einsum("vcl,l->vc", model.shape_dirs[..., :len(shape)],
                                             jnp.asarray(shape, model.dtype))
    if static_offset is not None:
        template = template + jnp.asarray(static_offset, model.dtype)
    return dataclasses.replace(model, v_template=template, shape_dirs=model.shape_dirs[..., :0])


class FlameArrays(nnx.Module):
    def __init__(self, model: FlameModel):
        self.parents = model.parents
        # shape_dirs is empty after personalise (Orbax cannot save zero-size arrays).
        self.fields = tuple(f.name for f in dataclasses.fields(FlameModel)
                            if f.name not in ("parents", "shape_dirs")
                            and getattr(model, f.name) is not None)
        for name in self.fields:
            setattr(self, name, FlameConst(getattr(model, name)))

    def model(self) -> FlameModel:
        arrays = {n: getattr(self, n)[...] for n in self.fields}
        shape_dirs = jnp.zeros(arrays["v_template"].shape + (0,), arrays["v_template"].dtype)
        return FlameModel(parents=self.parents, shape_dirs=shape_dirs, **arrays)


class FrameRefinement(nnx.Module):
    def __init__(self, n_frames: int, n_cameras: int, n_expr: int, lr_scale: float):
        self.lr_scale = float(lr_scale)
        for key, size in REFINED_KEYS.items():
            setattr(self, key, nnx.Param(jnp.zeros((n_frames, size or n_expr))))
        self.camera = nnx.Param(jnp.zeros((n_cameras, 6)))

    def apply(self, params: FlameParams, frames: jax.Array, refine: jax.Array) -> FlameParams:
        """Tracked params + this frame's corrections; corrections get no gradient where
        refine (B,) is False (the frozen stage)."""
        changes = {}
        for key in REFINED_KEYS:
            delta = getattr(self, key)[...][frames] * self.lr_scale
            delta = jnp.where(refine[:, None], delta, jax.lax.stop_gradient(delta))
            changes[key] = getattr(params, key) + delta
        return params.replace(**changes)

    def viewmat(self, viewmat: jax.Array, cameras: jax.Array, refine: jax.Array) -> jax.Array:
        """viewmat (B, 4, 4) composed on the camera side with the camera's correction."""
        delta = self.camera[...][cameras] * self.lr_scale
        delta = jnp.where(refine[:, None], delta, jax.lax.stop_gradient(delta))
        fix = jnp.zeros_like(viewmat).at[:, :3, :3].set(batch_rodrigues(delta[:, :3]))
        fix = fix.at[:, :3, 3].set(delta[:, 3:]).at[:, 3, 3].set(1.0)
        return fix @ viewmat


class AdaptModel(nnx.Module):
    """avatar (GaussianAvatar), flame (FlameArrays), refinement (FrameRefinement), and
    is_lip (C,) marking the Gaussians on lip triangles (lip-guided supervision)."""

    def __init__(self, avatar: GaussianAvatar, flame: FlameModel, refinement: FrameRefinement,
                 is_lip: np.ndarray):
        self.avatar = avatar
        self.flame = FlameArrays(flame)
        self.refinement = refinement
        self.is_lip = Binding(jnp.asarray(is_lip, bool))

    def densify(self, grad_sum: jax.Array, grad_count: jax.Array, key: jax.Array,
                cfg: densify.DensifyConfig) -> None:
        """Add one step's densification statistics (C,) and run densify.densify_step on
        the avatar (the lip flags are part of the inherited binding)."""
        avatar = self.avatar
        values = {name: jax.lax.stop_gradient(avatar.template(name)) for name in densify.ATTRIBUTES}
        binding = {name: getattr(avatar, name)[...] for name in densify.BINDING if name != "is_lip"}
        binding["is_lip"] = self.is_lip[...]
        stats = {"grad_sum": avatar.grad_sum[...] + grad_sum,
                 "grad_count": avatar.grad_count[...] + grad_count,
                 "n_used": avatar.n_used[...], "clock": avatar.clock[...]}
        n_faces = int(self.flame.faces[...].shape[0])
        values, binding, active, stats = densify.densify_step(values, binding, avatar.active[...],
                                                              stats, key, n_faces, cfg)
        for name, value in values.items():
            avatar.set_template(name, value)
        # Replaced, not written in place (see GaussianAvatar.set_template).
        for name, value in binding.items():
            setattr(self if name == "is_lip" else avatar, name, Binding(value))
        avatar.active = Binding(active)
        for name, value in stats.items():
            setattr(avatar, name, DensifyStat(value))
