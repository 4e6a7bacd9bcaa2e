"""Template + offset deformation (FlashTalker) with a colour MLP (GGTalker).

Driving signals become tokens, each tagged with the region it drives:
  upper face: expression tokens + one eye-pose token (blinks and gaze live in the
              expression and eye rotations of FLAME),
  lower face: expression tokens + one jaw token (+ one audio token when audio features
              are given),
  other:      one head-pose token (global rotation + neck).
Every Gaussian carries a learned feature vector (its query). Disentangled cross-region
attention lets a Gaussian attend only to its own region's tokens (a masked softmax); a
head-wide cross-attention over all tokens keeps motion continuous across region borders.
The offset MLP maps [feature, regional context, head context] to per-Gaussian offsets:
position (3, in the triangle's local frame), rotation (4, added to the template
quaternion), log-scale (3), colour logit (3) and opacity logit (1), multiplied by
`offset_scale` (a small factor: with one optimiser learning rate for everything, it keeps
the network's early steps from throwing Gaussians off their triangles). Its last layer
starts at zero, so an untrained deformer leaves the template unchanged.
The colour MLP (GGTalker's M_SH, here on RGB logits rather than SH) maps a Gaussian's
colour logit with expression and pose embeddings to a colour-logit correction; its last
layer also starts at zero.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from flashtalker_jax.avatar.sampling import LOWER, OTHER, UPPER

OFFSET_SPLITS = {"position": 3, "rotation": 4, "log_scale": 3, "color": 3, "opacity": 1}


class TemplateView(NamedTuple):
    """What a deformer may read of the avatar's N template Gaussians and their binding. Every
    deformer takes (TemplateView, drive) and reads the fields it needs, so the avatar calls
    any of them the same way (unread fields cost nothing under jit)."""
    features: Float[Array, "N d"]        # the per-Gaussian query / LPE table
    regions: Int[Array, "N"]             # sampling.UPPER / LOWER / OTHER
    color_logits: Float[Array, "N 3"]
    attributes: Float[Array, "N 14"]     # deform_talk2me.ATTRIBUTES, concatenated
    face_ids: Int[Array, "N"]
    barycentrics: Float[Array, "N 3"]
    faces: Int[Array, "F 3"]


class DriveTokens(nnx.Module):
    """Drive signals -> tokens (B, T, d) and each token's region (T,) (module docstring)."""

    def __init__(self, n_expr: int, audio_dim: int, dim: int, expr_tokens: int, rngs: nnx.Rngs):
        self.expr_tokens = expr_tokens
        self.dim = dim
        self.upper_expr = nnx.Linear(n_expr, expr_tokens * dim, rngs=rngs)
        self.lower_expr = nnx.Linear(n_expr, expr_tokens * dim, rngs=rngs)
        self.eyes = nnx.Linear(6, dim, rngs=rngs)
        self.jaw = nnx.Linear(3, dim, rngs=rngs)
        self.pose = nnx.Linear(6, dim, rngs=rngs)
        self.audio = nnx.Linear(audio_dim, dim, rngs=rngs) if audio_dim else None
        n_tokens = 2 * expr_tokens + 3 + (1 if audio_dim else 0)
        self.token_embed = nnx.Param(0.02 * jax.random.normal(rngs.params(), (n_tokens, dim)))

    def token_regions(self) -> np.ndarray:
        k = self.expr_tokens
        regions = [UPPER] * k + [UPPER] + [LOWER] * k + [LOWER] + [OTHER]
        if self.audio is not None:
            regions.append(LOWER)
        return np.asarray(regions, np.int32)

    def __call__(self, drive: Mapping[str, Array]) -> Float[Array, "B T d"]:
        batch = drive["expr"].shape[0]
        parts = [self.upper_expr(drive["expr"]).reshape(batch, self.expr_tokens, self.dim),
                 self.eyes(drive["eyes_pose"])[:, None],
                 self.lower_expr(drive["expr"]).reshape(batch, self.expr_tokens, self.dim),
                 self.jaw(drive["jaw_pose"])[:, None],
                 self.pose(jnp.concatenate([drive["rotation"], drive["neck_pose"]], -1))[:, None]]
        if self.audio is not None:
            parts.append(self.audio(drive["audio"])[:, None])
        return jax.nn.gelu(jnp.concatenate(parts, 1)) + self.token_embed[...]


class CrossAttention(nnx.Module):
    """Multi-head attention of Gaussian queries (N, d) over per-frame tokens (B, T, d),
    optionally masked by region (a Gaussian sees only tokens of its own region)."""

    def __init__(self, dim: int, heads: int, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"attention dim {dim} must divide by heads {heads}")
        self.heads = heads
        self.q = nnx.Linear(dim, dim, rngs=rngs)
        self.kv = nnx.Linear(dim, 2 * dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(self, queries: Float[Array, "N d"], tokens: Float[Array, "B T d"],
                 mask: Float[Array, "N T"] | None = None) -> Float[Array, "B N d"]:
        n, d = queries.shape
        h = self.heads
        q = self.q(queries).reshape(n, h, d // h)
        k, v = jnp.split(self.kv(tokens), 2, axis=-1)
        k = k.reshape(*k.shape[:2], h, d // h)
        v = v.reshape(*v.shape[:2], h, d // h)
        logits = jnp.einsum("nhc,bthc->bnht", q, k) / jnp.sqrt(d // h)
        if mask is not None:
            logits = jnp.where(mask[None, :, None, :], logits, -1e9)
        weights = jax.nn.softmax(logits, axis=-1)
        return self.out(jnp.einsum("bnht,bthc->bnhc", weights, v).reshape(-1, n, d))


class MLP(nnx.Module):
    """GELU MLP whose last layer starts at zero (its output starts as exactly 0)."""

    def __init__(self, widths: tuple[int, ...], rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-2], widths[1:-1])])
        self.last = nnx.Linear(widths[-2], widths[-1], kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.gelu(layer(x))
        return self.last(x)


class Deformer(nnx.Module):
    """(TemplateView: features (N, d), regions (N,), colour logits; drive) -> offsets
    {name: (B, N, k)} and a colour-logit correction (B, N, 3) from the colour MLP (zeros
    when it is disabled)."""

    def __init__(self, *, n_expr: int, audio_dim: int, dim: int, heads: int, expr_tokens: int,
                 hidden: int, layers: int, color_mlp: bool, color_hidden: int,
                 offset_scale: float, rngs: nnx.Rngs):
        self.offset_scale = float(offset_scale)
        self.tokens = DriveTokens(n_expr, audio_dim, dim, expr_tokens, rngs)
        self.regional = CrossAttention(dim, heads, rngs)
        self.head_wide = CrossAttention(dim, heads, rngs)
        widths = (3 * dim,) + (hidden,) * layers + (sum(OFFSET_SPLITS.values()),)
        self.offset_mlp = MLP(widths, rngs)
        if color_mlp:
            self.expr_embed = nnx.Linear(n_expr, dim, rngs=rngs)
            self.pose_embed = nnx.Linear(12, dim, rngs=rngs)
            self.color_mlp = MLP((3 + 2 * dim, color_hidden, color_hidden, 3), rngs)
        else:
            self.color_mlp = None

    def __call__(self, template: TemplateView, drive: Mapping[str, Array]
                 ) -> tuple[dict[str, Array], Float[Array, "B N 3"]]:
        features, regions = template.features, template.regions
        tokens = self.tokens(drive)
        mask = regions[:, None] == jnp.asarray(self.tokens.token_regions())[None, :]
        regional = self.regional(features, tokens, mask)
        head = self.head_wide(features, tokens)
        batch = tokens.shape[0]
        feats = jnp.broadcast_to(features, (batch,) + features.shape)
        raw = self.offset_scale * self.offset_mlp(jnp.concatenate([feats, regional, head], -1))
        bounds = np.cumsum(list(OFFSET_SPLITS.values()))[:-1]
        offsets = dict(zip(OFFSET_SPLITS, jnp.split(raw, bounds, axis=-1)))
        return offsets, self._color_correction(template.color_logits, drive, batch)

    def _color_correction(self, color_logits, drive, batch):
        n = color_logits.shape[0]
        if self.color_mlp is None:
            return jnp.zeros((batch, n, 3), color_logits.dtype)
        pose = jnp.concatenate([drive["rotation"], drive["neck_pose"], drive["jaw_pose"],
                                drive["eyes_pose"][:, :3]], -1)
        cond = jnp.concatenate([jax.nn.gelu(self.expr_embed(drive["expr"])),
                                jax.nn.gelu(self.pose_embed(pose))], -1)  # (B, 2d)
        x = jnp.concatenate([jnp.broadcast_to(color_logits, (batch, n, 3)),
                             jnp.broadcast_to(cond[:, None], (batch, n, cond.shape[-1]))], -1)
        return self.offset_scale * self.color_mlp(x)
