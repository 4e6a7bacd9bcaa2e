"""The model an adaptation trains: the inference avatar (renderer.AvatarModel: Gaussian
avatar, the identity's FLAME arrays, lip flags, audio normalisation) plus per-frame FLAME /
per-camera refinements (GaussianAvatars, GaussianHeadTalk).

- `FrameRefinement` holds zero-initialised corrections of every training frame's tracked
  FLAME expression, global/neck/jaw/eye rotations and translation, and of every camera's
  extrinsics (axis-angle + translation applied on the camera side). The adaptation first
  trains with them frozen, then jointly (`refine` flag per batch row).
  `centered`: every table is used minus its mean over rows (frames; cameras), so the
  corrections cannot move the training frames on average away from the tracker's
  convention, which held-out frames, `speak` and `eval` render with (they have no
  corrections); with one camera (a monocular clip) the camera correction is then zero.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from flashtalker_jax.avatar import densify
from flashtalker_jax.avatar.avatar import Binding, DensifyStat, GaussianAvatar
from flashtalker_jax.avatar.renderer import AvatarModel, AvatarSpec
from flashtalker_jax.flame.lbs import batch_rodrigues
from flashtalker_jax.flame.model import FRAME_KEYS, FlameParams

REFINED_KEYS = FRAME_KEYS  # every tracked per-frame parameter gets a correction


class FrameRefinement(nnx.Module):
    def __init__(self, n_frames: int, n_cameras: int, n_expr: int, lr_scale: float,
                 centered: bool = False):
        self.lr_scale = float(lr_scale)
        self.centered = bool(centered)
        for key, size in REFINED_KEYS.items():
            setattr(self, key, nnx.Param(jnp.zeros((n_frames, size or n_expr))))
        self.camera = nnx.Param(jnp.zeros((n_cameras, 6)))

    def delta(self, table: nnx.Param, rows: jax.Array, refine: jax.Array) -> jax.Array:
        """The corrections (B, k) of `rows` (B,) of a table: stored value * lr_scale, minus
        the table's mean over rows when centered; no gradient where refine (B,) is False.
        The mean passes no gradient: differentiated, it would hand every row -g/N each step,
        which Adam rescales into a full step of every row (identity_006: 21.1 dB held-out vs
        26.9 uncentred, BENCHMARKS.md); so the rows get the same sparse gradients as
        uncentred and the centring is a projection of the value."""
        values = table[...]
        if self.centered:
            values = values - jax.lax.stop_gradient(jnp.mean(values, axis=0, keepdims=True))
        delta = values[rows] * self.lr_scale
        return jnp.where(refine[:, None], delta, jax.lax.stop_gradient(delta))

    def apply(self, params: FlameParams, frames: jax.Array, refine: jax.Array) -> FlameParams:
        """Tracked params + this frame's corrections; corrections get no gradient where
        refine (B,) is False (the frozen stage)."""
        return params.replace(**{key: getattr(params, key) + self.delta(getattr(self, key), frames, refine)
                                 for key in REFINED_KEYS})

    def viewmat(self, viewmat: jax.Array, cameras: jax.Array, refine: jax.Array) -> jax.Array:
        """viewmat (B, 4, 4) composed on the camera side with the camera's correction."""
        delta = self.delta(self.camera, cameras, refine)
        fix = jnp.zeros_like(viewmat).at[:, :3, :3].set(batch_rodrigues(delta[:, :3]))
        fix = fix.at[:, :3, 3].set(delta[:, 3:]).at[:, 3, 3].set(1.0)
        return fix @ viewmat


class AdaptModel(AvatarModel):
    """The AvatarModel (is_lip also drives lip-guided supervision) plus refinement
    (FrameRefinement), which only training renders with."""

    def __init__(self, avatar: GaussianAvatar, spec: AvatarSpec, refinement: FrameRefinement):
        super().__init__(avatar, spec)
        self.refinement = refinement

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
