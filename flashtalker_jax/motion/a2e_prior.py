"""GGTalker's audio-to-expression prior: a conditional diffusion transformer over FLAME
motion (expression coefficients + jaw pose), predicting x0.

Pieces (sizes from `config.model`, see configs/pretrain_a2e.py):
- Audio condition encoder: per-row audio features (T_a = steps_per_frame * frames, any D)
  -> linear projection to d -> shallow transformer -> frame-level conditions C'. A learned
  identity/style embedding (row 0 = "any speaker", used for unseen identities) gives,
  together with the masked mean of C', the global condition c_bar.
- Diffusion time: sinusoidal embedding + MLP -> t_n; FiLM: (t_n + c_bar) -> per-layer
  scale and shift of every LayerNorm in the decoder (zero-initialised, so layers start
  as plain pre-LN blocks).
- Decoder (`decoder_layers`, 8 in GGTalker/DiffPoseTalk): self-attention over
  [context frames | window frames] and cross-attention to the audio rows with the
  alignment mask (frame t sees the rows of frames t +- align_radius).
- Long audio (DiffPoseTalk): a window of W frames is conditioned on C clean motion frames
  that precede it (the previous window's output); `context_mask` False = no context
  (first window), the context tokens are then hidden from attention.
- Classifier-free guidance: `drop_audio` replaces C' by a learned null row (training
  drops with probability 0.1; sampling runs both and mixes them with the guidance scale).
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.layers import (Attention, BoundState, EncoderLayer, FeedForward,
                                           alignment_mask, sinusoidal_embedding)
from flashtalker_jax.motion.losses import regression_loss, temporal_huber_loss


@dataclasses.dataclass(frozen=True)
class PriorDims:
    motion_dim: int          # expression coefficients + 3 jaw pose
    audio_dim: int           # feature width D
    d_model: int = 512
    num_heads: int = 8
    encoder_layers: int = 2
    decoder_layers: int = 8
    ff_mult: int = 4
    id_dim: int = 64
    num_identities: int = 1  # learned style rows besides row 0 ("any speaker")
    window: int = 100
    context: int = 10
    steps_per_frame: int = 2
    align_radius: int = 0

    @classmethod
    def from_config(cls, model: ml_collections.ConfigDict, motion_dim: int, audio_dim: int) -> "PriorDims":
        names = {f.name for f in dataclasses.fields(cls)} - {"motion_dim", "audio_dim"}
        return cls(motion_dim=motion_dim, audio_dim=audio_dim, **{k: model[k] for k in names})


class AudioConditionEncoder(nnx.Module):
    def __init__(self, dims: PriorDims, rngs: nnx.Rngs):
        d = dims.d_model
        self.dims = dims
        self.proj = nnx.Linear(dims.audio_dim, d, rngs=rngs)
        self.layers = nnx.List([EncoderLayer(d, dims.num_heads, dims.ff_mult, rngs)
                                for _ in range(dims.encoder_layers)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.null_audio = nnx.Param(jax.random.normal(rngs.params(), (d,)) * 0.02)
        self.identity = nnx.Embed(dims.num_identities + 1, dims.id_dim, rngs=rngs)
        self.id_proj = nnx.Linear(dims.id_dim, d, rngs=rngs)

    def __call__(self, audio: Float[Array, "B Ta D"], audio_mask: Bool[Array, "B Ta"],
                 identity: Int[Array, "B"], drop_audio: Bool[Array, "B"]
                 ) -> tuple[Float[Array, "B Ta d"], Float[Array, "B d"]]:
        pos = sinusoidal_embedding(jnp.arange(audio.shape[1]) / self.dims.steps_per_frame,
                                   self.dims.d_model)
        x = self.proj(audio) + pos
        mask = (audio_mask[:, None, :] & audio_mask[:, :, None])[:, None]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        x = jnp.where(drop_audio[:, None, None], self.null_audio[...], x)
        weights = audio_mask[..., None].astype(x.dtype)
        pooled = jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
        return x, pooled + self.id_proj(self.identity(identity))


class DecoderLayer(nnx.Module):
    """Pre-LN block: FiLM-modulated self-attention, cross-attention, feed-forward."""

    def __init__(self, dims: PriorDims, rngs: nnx.Rngs):
        d = dims.d_model
        self.norms = nnx.List([nnx.LayerNorm(d, use_scale=False, use_bias=False, rngs=rngs)
                               for _ in range(3)])
        self.film = nnx.Linear(d, 6 * d, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.self_attn = Attention(d, dims.num_heads, rngs)
        self.cross_attn = Attention(d, dims.num_heads, rngs)
        self.ff = FeedForward(d, dims.ff_mult * d, rngs)

    def __call__(self, x, cond, memory, self_mask, cross_mask):
        mods = jnp.split(self.film(jax.nn.silu(cond))[:, None, :], 6, axis=-1)

        def modulated(i, y):
            return self.norms[i](y) * (1.0 + mods[2 * i]) + mods[2 * i + 1]

        h = modulated(0, x)
        x = x + self.self_attn(h, h, self_mask)
        x = x + self.cross_attn(modulated(1, x), memory, cross_mask)
        return x + self.ff(modulated(2, x))


class A2EPrior(nnx.Module):
    """x0-predicting denoiser for one window (see the module doc)."""

    def __init__(self, dims: PriorDims, rngs: nnx.Rngs):
        d = dims.d_model
        self.dims = dims
        self.encoder = AudioConditionEncoder(dims, rngs)
        self.time_mlp = nnx.Sequential(nnx.Linear(d, d, rngs=rngs), jax.nn.silu,
                                       nnx.Linear(d, d, rngs=rngs))
        self.in_proj = nnx.Linear(dims.motion_dim, d, rngs=rngs)
        self.context_proj = nnx.Linear(dims.motion_dim, d, rngs=rngs)
        self.layers = nnx.List([DecoderLayer(dims, rngs) for _ in range(dims.decoder_layers)])
        self.out_norm = nnx.LayerNorm(d, rngs=rngs)
        self.out = nnx.Linear(d, dims.motion_dim, rngs=rngs)

    def __call__(self, x_t: Float[Array, "B W P"], n: Int[Array, "B"], context: Float[Array, "B C P"],
                 context_mask: Bool[Array, "B"], audio: Float[Array, "B Ta D"],
                 frame_mask: Bool[Array, "B W"], identity: Int[Array, "B"],
                 drop_audio: Bool[Array, "B"]) -> Float[Array, "B W P"]:
        """audio covers the context and window frames: Ta = steps_per_frame * (C + W)."""
        dims = self.dims
        b, w, _ = x_t.shape
        c = context.shape[1]
        chex.assert_shape(audio, (b, dims.steps_per_frame * (c + w), dims.audio_dim))
        valid = jnp.concatenate([jnp.broadcast_to(context_mask[:, None], (b, c)), frame_mask], axis=1)
        audio_mask = jnp.repeat(valid, dims.steps_per_frame, axis=1)
        memory, global_cond = self.encoder(audio, audio_mask, identity, drop_audio)
        cond = self.time_mlp(sinusoidal_embedding(n, dims.d_model)) + global_cond
        x = jnp.concatenate([self.context_proj(context), self.in_proj(x_t)], axis=1)
        x = x + sinusoidal_embedding(jnp.arange(c + w), dims.d_model)
        self_mask = (valid[:, None, :] & valid[:, :, None])[:, None]
        align = alignment_mask(c + w, audio.shape[1], dims.steps_per_frame, dims.align_radius)
        cross_mask = (align[None] & audio_mask[:, None, :])[:, None]
        for layer in self.layers:
            x = layer(x, cond, memory, self_mask, cross_mask)
        return self.out(self.out_norm(x[:, c:]))


def sample_window(model: A2EPrior, alpha_bars: Float[Array, "N"], key: jax.Array, *,
                  context: Float[Array, "B C P"], context_mask: Bool[Array, "B"],
                  audio: Float[Array, "B Ta D"], frame_mask: Bool[Array, "B W"],
                  identity: Int[Array, "B"], num_sample_steps: int, guidance_scale: float
                  ) -> Float[Array, "B W P"]:
    """DDIM sampling of one window with classifier-free guidance (both passes in one batch)."""
    b, w = frame_mask.shape
    twice = lambda y: jnp.concatenate([y, y], axis=0)
    drop = jnp.concatenate([jnp.zeros((b,), bool), jnp.ones((b,), bool)])

    def denoise(x, n):
        x0 = model(twice(x), twice(n), twice(context), twice(context_mask), twice(audio),
                   twice(frame_mask), twice(identity), drop)
        return diffusion.guided(x0[:b], x0[b:], guidance_scale)

    return diffusion.ddim_sample(denoise, alpha_bars, (b, w, model.dims.motion_dim), key,
                                 num_sample_steps)


@dataclasses.dataclass(frozen=True)
class PriorLossWeights:
    regression: float = 1.0      # x0 regression on normalised [expr | jaw]
    temporal: float = 0.5        # Huber on adjacent-frame differences
    temporal_delta: float = 0.1
    lip: float = 0.0             # mesh-space lip-vertex loss (mm^2); needs `lip_fn`
    cond_drop: float = 0.1       # classifier-free guidance: audio condition dropout


def prior_loss(model: A2EPrior, batch: dict, key: jax.Array, alpha_bars: Float[Array, "N"],
               weights: PriorLossWeights, lip_fn=None) -> tuple[jax.Array, dict]:
    """x0-prediction diffusion loss on one batch of windows.

    batch: motion (B,W,P) and context (B,C,P) normalised; context_mask (B,), audio
    (B, s (C+W), D), frame_mask (B,W), identity (B,) int; `lip_fn(pred, target, batch) ->
    scalar` (normalised motions in) adds the mesh-space lip term when weights.lip > 0.
    """
    x0, mask = batch["motion"], batch["frame_mask"]
    b = x0.shape[0]
    n_key, noise_key, drop_key = jax.random.split(key, 3)
    n = jax.random.randint(n_key, (b,), 0, alpha_bars.shape[0])
    x_t = diffusion.q_sample(alpha_bars, x0, n, jax.random.normal(noise_key, x0.shape))
    drop = jax.random.bernoulli(drop_key, weights.cond_drop, (b,))
    pred = model(x_t, n, batch["context"], batch["context_mask"], batch["audio"], mask,
                 batch["identity"], drop)
    terms = {"regression": regression_loss(pred, x0, mask),
             "temporal": temporal_huber_loss(pred, x0, mask, weights.temporal_delta)}
    total = weights.regression * terms["regression"] + weights.temporal * terms["temporal"]
    if weights.lip > 0:
        terms["lip_mm2"] = lip_fn(pred, x0, batch)
        total = total + weights.lip * terms["lip_mm2"]
    return total, terms


def make_window_sampler(model: A2EPrior, alpha_bars: Float[Array, "N"], num_sample_steps: int,
                        guidance_scale: float):
    """Jitted fn(key, context, context_mask, audio, frame_mask, identity) -> (B, W, P).
    The guidance scale is a traced argument: changing it does not recompile. After
    `nnx.update(model, ...)`, `refresh()` the sampler (layers.BoundState) to use the new
    parameters without recompiling (adapt-a2e scores every evaluation with one sampler)."""
    graphdef = nnx.graphdef(model)

    @jax.jit
    def run(state, scale, key, context, context_mask, audio, frame_mask, identity):
        return sample_window(nnx.merge(graphdef, state), alpha_bars, key, context=context,
                             context_mask=context_mask, audio=audio, frame_mask=frame_mask,
                             identity=identity, num_sample_steps=num_sample_steps,
                             guidance_scale=scale)

    scale = jnp.float32(guidance_scale)
    return BoundState(model, lambda state, *args: run(state, scale, *args))
