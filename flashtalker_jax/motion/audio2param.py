"""GaussianHeadTalk's Audio2Param: a deterministic audio -> FLAME parameter transformer.

Reading of the paper (Sec. 3.2), layer by layer:
- Audio features (T_a = steps_per_frame * T rows, any D: frozen Wav2Vec2 or log-mel)
  -> linear projection -> C (optionally a shallow transformer encoder first, for features
  that carry little context themselves, such as log-mel).
- Frame queries carry FaceFormer's periodic positional encoding (PPE). Decoder layers:
  causal self-attention with FaceFormer's period-biased (ALiBi-style) mask, so frame t
  uses frames <= t only, and cross-attention to C under the binary alignment mask
  (frame t sees the rows of frames t - align_radius .. t) -> latent offsets O_v.
- Style: the identity's neutral template mesh (mean of its tracked meshes), flattened, goes
  through an MLP style encoder -> S; O_sv = S + O_v (Eq. 5).
- Motion decoder: linear layers O_sv -> [expr | jaw] FLAME parameters per frame.
Non-autoregressive (queries are positions, not previous outputs), so one pass handles
any length; the loss is L2 in vertex space on the jaw-driven vertices (Eq. 6, losses.py).
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jaxtyping import Array, Bool, Float

from flashtalker_jax.motion.layers import (Attention, EncoderLayer, FeedForward, alibi_causal_bias,
                                           alignment_mask, periodic_positional_encoding)


@dataclasses.dataclass(frozen=True)
class Audio2ParamDims:
    motion_dim: int
    audio_dim: int
    template_dim: int          # 3 x number of template vertices
    d_model: int = 128
    num_heads: int = 4
    audio_layers: int = 0
    decoder_layers: int = 2
    ff_mult: int = 2
    period: int = 25
    steps_per_frame: int = 2
    align_radius: int = 0

    @classmethod
    def from_config(cls, model: ml_collections.ConfigDict, motion_dim: int, audio_dim: int,
                    template_dim: int) -> "Audio2ParamDims":
        names = {f.name for f in dataclasses.fields(cls)} - {"motion_dim", "audio_dim", "template_dim"}
        return cls(motion_dim=motion_dim, audio_dim=audio_dim, template_dim=template_dim,
                   **{k: model[k] for k in names})


class CausalAlignedLayer(nnx.Module):
    def __init__(self, dims: Audio2ParamDims, rngs: nnx.Rngs):
        d = dims.d_model
        self.norm1 = nnx.LayerNorm(d, rngs=rngs)
        self.self_attn = Attention(d, dims.num_heads, rngs)
        self.norm2 = nnx.LayerNorm(d, rngs=rngs)
        self.cross_attn = Attention(d, dims.num_heads, rngs)
        self.norm3 = nnx.LayerNorm(d, rngs=rngs)
        self.ff = FeedForward(d, dims.ff_mult * d, rngs)

    def __call__(self, x, memory, self_mask, self_bias, cross_mask):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, self_mask, self_bias)
        x = x + self.cross_attn(self.norm2(x), memory, cross_mask)
        return x + self.ff(self.norm3(x))


class Audio2Param(nnx.Module):
    def __init__(self, dims: Audio2ParamDims, rngs: nnx.Rngs):
        d = dims.d_model
        self.dims = dims
        self.audio_proj = nnx.Linear(dims.audio_dim, d, rngs=rngs)
        self.audio_layers = nnx.List([EncoderLayer(d, dims.num_heads, dims.ff_mult, rngs)
                                      for _ in range(dims.audio_layers)])
        self.query_proj = nnx.Linear(d, d, rngs=rngs)
        self.layers = nnx.List([CausalAlignedLayer(dims, rngs) for _ in range(dims.decoder_layers)])
        self.style = nnx.Sequential(nnx.Linear(dims.template_dim, d, rngs=rngs), jax.nn.gelu,
                                    nnx.Linear(d, d, rngs=rngs))
        self.motion_decoder = nnx.Sequential(nnx.LayerNorm(d, rngs=rngs), nnx.Linear(d, d, rngs=rngs),
                                             jax.nn.gelu, nnx.Linear(d, dims.motion_dim, rngs=rngs))

    def __call__(self, audio: Float[Array, "B Ta D"], template: Float[Array, "B V3"],
                 frame_mask: Bool[Array, "B T"]) -> Float[Array, "B T P"]:
        dims = self.dims
        b, t = frame_mask.shape
        chex.assert_shape(audio, (b, dims.steps_per_frame * t, dims.audio_dim))
        chex.assert_shape(template, (b, dims.template_dim))
        audio_mask = jnp.repeat(frame_mask, dims.steps_per_frame, axis=1)
        memory = self.audio_proj(audio)
        for layer in self.audio_layers:
            causal_rows = jnp.tril(jnp.ones((audio.shape[1],) * 2, bool))
            memory = layer(memory, causal_rows[None, None] & audio_mask[:, None, None, :])
        ppe = periodic_positional_encoding(t, dims.d_model, dims.period)
        x = jnp.broadcast_to(self.query_proj(ppe)[None], (b, t, dims.d_model))
        self_mask = (frame_mask[:, None, :] & frame_mask[:, :, None])[:, None]
        bias = alibi_causal_bias(t, dims.num_heads, dims.period)[None]
        # Causal alignment: frame t sees audio rows of frames t - radius .. t only.
        align = alignment_mask(t, audio.shape[1], dims.steps_per_frame, dims.align_radius)
        causal = jnp.arange(audio.shape[1])[None, :] // dims.steps_per_frame <= jnp.arange(t)[:, None]
        cross_mask = ((align & causal)[None] & audio_mask[:, None, :])[:, None]
        for layer in self.layers:
            x = layer(x, memory, self_mask, bias, cross_mask)
        return self.motion_decoder(x + self.style(template)[:, None, :])
