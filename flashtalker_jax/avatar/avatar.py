"""The Gaussian avatar: template Gaussians bound to FLAME triangles plus learned offsets.

`GaussianAvatar(placement, template, faces, config.avatar, rngs)` holds
- the binding (nnx Variables, not trained): face_ids (C,), barycentrics (C, 3), region
  (C,), active (C,) bool. C is the capacity: the placement's count, or a larger static
  capacity for per-face densification (unused slots are inactive and fully transparent);
- the template (nnx Params): local means / log-scales / quaternions (in the triangle
  frame, see binding.py), opacity and colour logits, and per-Gaussian query features;
- the deformer, by `cfg.deformer`: "cross_attention" (deform.Deformer, FlashTalker's
  disentangled cross-region attention, the default) or "region_weighted"
  (deform_talk2me.RegionWeightedDeformer, Talk2Me's region-weighted MLP with the learnable
  positional encoding, which also reads the template attributes, the binding and the
  neutral `landmarks`); both are called alike, (deform.TemplateView, drive), each reading
  the fields it needs, and give the same offsets and colour correction;
- with `densifiable=True` (per-face placement with densification, densify.py): a
  non-trained shift per template attribute (densification writes a Gaussian's new value
  there, since a train step can only change trained parameters through the optimiser)
  and the densification statistics (grad_sum, grad_count, n_used, clock).
Per-group learning rates (3DGS uses a different one per attribute) with one optimiser:
every template Param is stored divided by `cfg.lr_scale.<name>` and multiplied back when
used, so Adam's step on the stored value (~ lr) is a step of lr * scale on the attribute.
`avatar(vertices, faces, drive)` gives per-frame world-space Gaussians ready for
`render.rasterize`: offsets from the deformer are added to the local parameters, then the
binding maps them to the posed mesh.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from flashtalker_jax.avatar.binding import local_to_world, triangle_frames
from flashtalker_jax.avatar.deform import Deformer, TemplateView
from flashtalker_jax.avatar.deform_talk2me import ATTRIBUTES, RegionWeightedDeformer, eye_aspect_ratio
from flashtalker_jax.avatar.sampling import Placement
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import N_STATIC


class Binding(nnx.Variable):
    """Non-trained per-Gaussian binding data (triangle, barycentrics, region, active)."""


class TemplateShift(nnx.Variable):
    """Non-trained part of a template attribute, written by densification."""


class DensifyStat(nnx.Variable):
    """Densification bookkeeping: gradient statistics, slots used, steps seen."""


class ViewProbe(nnx.Variable):
    """Zero added to the world means; its gradient is the densification statistic's input."""


@dataclasses.dataclass(frozen=True)
class Gaussians:
    """World-space Gaussians per frame: means (B, N, 3), quats (B, N, 4) wxyz unit,
    scales (B, N, 3), opacities (B, N) in [0, 1], colors (B, N, 3) in [0, 1].
    Also the local parameters the regularisers need: local_means (B, N, 3) and
    local_log_scales (B, N, 3) after offsets."""
    means: Array
    quats: Array
    scales: Array
    opacities: Array
    colors: Array
    local_means: Array
    local_log_scales: Array


jax.tree_util.register_dataclass(Gaussians, data_fields=[f.name for f in dataclasses.fields(Gaussians)],
                                 meta_fields=[])


def drive_from_flame(params, audio: Array | None = None,
                     landmarks: Array | None = None) -> dict[str, Array]:
    """The deformer's drive signals from FlameParams (B frames); audio (B, A) optional;
    landmarks (B, L, 3): the posed FLAME landmarks, whose eye-aspect ratios become
    drive["ear"] (B, 2) (deform_talk2me.py; renderer.render always passes them)."""
    drive = {"expr": params.expr, "jaw_pose": params.jaw_pose, "eyes_pose": params.eyes_pose,
             "rotation": params.rotation, "neck_pose": params.neck_pose}
    if audio is not None:
        drive["audio"] = audio
    # A FLAME folder without a landmark embedding gives none: only the region-weighted
    # deformer reads "ear", and it refuses a drive without it.
    if landmarks is not None and landmarks.shape[-2] >= N_STATIC:
        drive["ear"] = eye_aspect_ratio(landmarks)
    return drive


def make_deformer(cfg: ml_collections.ConfigDict, n_expr: int, audio_dim: int, template: np.ndarray,
                  landmarks: np.ndarray | None, rngs: nnx.Rngs):
    """The deformer `cfg.deformer` names (module docstring). Avatar folders written before
    the key existed hold no `deformer`: they are all cross-attention avatars."""
    kind = cfg.get("deformer", "cross_attention")
    if kind == "cross_attention":
        return Deformer(n_expr=n_expr, audio_dim=audio_dim, dim=cfg.feature_dim, heads=cfg.heads,
                        expr_tokens=cfg.expr_tokens, hidden=cfg.offset_hidden, layers=cfg.offset_layers,
                        color_mlp=cfg.color_mlp, color_hidden=cfg.color_hidden,
                        offset_scale=cfg.offset_scale, rngs=rngs)
    if kind == "region_weighted":
        if audio_dim:
            raise ConfigError("task.avatar.deformer='region_weighted' is driven by FLAME "
                              "expression and pose only: set task.avatar.use_audio=False")
        t = cfg.talk2me
        return RegionWeightedDeformer(
            n_expr=n_expr, dim=cfg.feature_dim, hidden=cfg.offset_hidden, layers=cfg.offset_layers,
            offset_scale=cfg.offset_scale, template=template, landmarks=landmarks,
            d_near=t.d_near, d_far=t.d_far, lpe=t.lpe, region_weights=t.region_weights, ear=t.ear,
            index_base=t.index_base, coord_frequencies=t.coord_frequencies, rngs=rngs)
    raise ConfigError(f"task.avatar.deformer={kind!r}: expected 'cross_attention' or 'region_weighted'")


class GaussianAvatar(nnx.Module):
    def __init__(self, placement: Placement, template: np.ndarray, faces: np.ndarray, n_expr: int,
                 audio_dim: int, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs,
                 densifiable: bool = False, landmarks: np.ndarray | None = None):
        n = placement.count
        capacity = max(n, int(cfg.capacity))
        pad = capacity - n
        with jax.ensure_compile_time_eval():  # constants, also when built inside jit
            k = np.asarray(triangle_frames(jnp.asarray(template), jnp.asarray(faces))[1])
        k = k[placement.face_ids]
        log_scale = np.log(np.maximum(placement.spacing * cfg.init_scale_factor, 1e-8) / k)

        def padded(a, fill):
            a = np.asarray(a)
            return np.concatenate([a, np.full((pad,) + a.shape[1:], fill, a.dtype)])

        self.face_ids = Binding(jnp.asarray(padded(placement.face_ids, 0), jnp.int32))
        self.barycentrics = Binding(jnp.asarray(padded(placement.barycentrics, 1 / 3), jnp.float32))
        self.region = Binding(jnp.asarray(padded(placement.region, 0), jnp.int32))
        self.active = Binding(jnp.asarray(padded(np.ones(n, bool), False)))
        # Initial local scale (triangle units): UV samples can be larger than their
        # triangle, so the scale regulariser's limit is taken relative to it (losses.py).
        self.init_scale = Binding(jnp.asarray(padded(np.exp(log_scale).astype(np.float32), 1.0)))
        self.lr_scale = {k: float(v) for k, v in cfg.lr_scale.items()}
        init_opacity = float(np.log(cfg.init_opacity / (1 - cfg.init_opacity)))
        initial = {
            "local_means": jnp.zeros((capacity, 3)),
            "local_log_scales": jnp.asarray(padded(np.repeat(log_scale[:, None], 3, 1)
                                                   .astype(np.float32), 0.0)),
            "local_quats": jnp.tile(jnp.array([1.0, 0, 0, 0]), (capacity, 1)),
            "opacity_logits": jnp.full((capacity,), init_opacity, jnp.float32),
            "color_logits": jnp.zeros((capacity, 3)),
            "features": cfg.feature_init_std * jax.random.normal(rngs.params(),
                                                                 (capacity, cfg.feature_dim)),
        }
        for name, value in initial.items():
            setattr(self, name, nnx.Param(value / self.lr_scale[name]))
        self.densifiable = densifiable
        if densifiable:
            for name, value in initial.items():
                setattr(self, f"{name}_shift", TemplateShift(jnp.zeros_like(value)))
            self.grad_sum = DensifyStat(jnp.zeros((capacity,), jnp.float32))
            self.grad_count = DensifyStat(jnp.zeros((capacity,), jnp.float32))
            self.n_used = DensifyStat(jnp.asarray(n, jnp.int32))
            self.clock = DensifyStat(jnp.zeros((), jnp.int32))
            # Zero, added to the world means: the densifying loss replaces it by zeros
            # (B, C, 3) and reads its gradient (adapt.py).
            self.view_probe = ViewProbe(jnp.zeros((1, 1, 3), jnp.float32))
        self.deformer = make_deformer(cfg, n_expr, audio_dim, template, landmarks, rngs)

    @property
    def capacity(self) -> int:
        return self.face_ids.shape[0]

    def template(self, name: str) -> Array:
        """A template attribute at its true scale (see the per-group learning rates)."""
        value = getattr(self, name)[...] * self.lr_scale[name]
        return value + getattr(self, f"{name}_shift")[...] if self.densifiable else value

    def set_template(self, name: str, value: Array) -> None:
        """Make template(name) equal `value` by replacing the shift (densifiable only).
        Variables are replaced, not written in place: inside the trainer's traced loss the
        model holds the state's Variables, which NNX refuses to mutate from that trace."""
        stored = jax.lax.stop_gradient(getattr(self, name)[...]) * self.lr_scale[name]
        setattr(self, f"{name}_shift", TemplateShift(value - stored))

    def __call__(self, vertices: Float[Array, "B V 3"], faces: Int[Array, "F 3"],
                 drive: Mapping[str, Array]) -> Gaussians:
        chex.assert_rank(vertices, 3)
        color_logits = self.template("color_logits")
        attributes = jnp.concatenate([self.template(name).reshape(self.capacity, -1) for name in ATTRIBUTES], -1)
        view = TemplateView(self.template("features"), self.region[...], color_logits, attributes,
                            self.face_ids[...], self.barycentrics[...], faces)
        offsets, color_fix = self.deformer(view, drive)
        local_means = self.template("local_means") + offsets["position"]
        local_log_scales = self.template("local_log_scales") + offsets["log_scale"]
        local_quats = self.template("local_quats") + offsets["rotation"]
        means, scales, quats = local_to_world(vertices, faces, self.face_ids[...],
                                              self.barycentrics[...], local_means,
                                              local_log_scales, local_quats)
        if self.densifiable:
            means = means + self.view_probe[...]
        opacity = jax.nn.sigmoid(self.template("opacity_logits") + offsets["opacity"][..., 0])
        colors = jax.nn.sigmoid(color_logits + offsets["color"] + color_fix)
        return Gaussians(means=means, quats=quats, scales=scales,
                         opacities=opacity * self.active[...], colors=colors,
                         local_means=local_means, local_log_scales=local_log_scales)
