"""Wav2Vec 2.0 encoder (inference) as Flax NNX modules, mirroring transformers' Wav2Vec2Model.

Attribute names follow the torch module tree (feature_extractor.conv_layers.i.conv, ...)
so checkpoint mapping stays one rule (weights.py); the only difference is that the
encoder layers are a single stacked EncoderLayer (leading layer axis) run with scan.
Two variants:
  - base / wav2vec2-large: feat_extract_norm="group" (GroupNorm(C, C) on conv 0 only) and
    a post-LN encoder (pos-conv -> LayerNorm -> layers with LN after each residual);
  - large-lv60 / XLS-R: feat_extract_norm="layer" (LayerNorm after every conv) and a
    stable pre-LN encoder (LN before attention and feed-forward, one final LN).
Details that must match torch exactly: erf GELU, eps 1e-5 with two-pass variance, the
positional conv (kernel K, groups G, weight norm over the kernel axis, padding K//2 and
the last frame dropped when K is even), dropout and masking absent (inference).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from flashtalker_jax.audio.wav2vec2.settings import Wav2Vec2Settings

# torch.nn.LayerNorm / GroupNorm default eps, used where transformers does not pass config's.
TORCH_NORM_EPS = 1e-5
PRECISION = jax.lax.Precision.HIGHEST  # f32 matmuls on GPU too (no TF32), so features match torch


def gelu(x: Array) -> Array:
    return jax.nn.gelu(x, approximate=False)


def layer_norm(features: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(features, epsilon=eps, use_fast_variance=False, rngs=rngs)


def linear(d_in: int, d_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, precision=PRECISION, rngs=rngs)


class ConvLayer(nnx.Module):
    """Conv1d (valid padding) -> optional norm -> GELU on (B, T, C_in) -> (B, T', C_out)."""

    def __init__(self, settings: Wav2Vec2Settings, index: int, rngs: nnx.Rngs):
        c_in = settings.conv_dim[index - 1] if index > 0 else 1
        c_out = settings.conv_dim[index]
        self.conv = nnx.Conv(c_in, c_out, kernel_size=(settings.conv_kernel[index],),
                             strides=(settings.conv_stride[index],), padding="VALID",
                             use_bias=settings.conv_bias, precision=PRECISION, rngs=rngs)
        if settings.feat_extract_norm == "layer":
            self.layer_norm = layer_norm(c_out, TORCH_NORM_EPS, rngs)
        elif index == 0:
            # GroupNorm with one channel per group: each channel normalised over time.
            self.layer_norm = nnx.GroupNorm(c_out, num_groups=c_out, epsilon=TORCH_NORM_EPS,
                                            use_fast_variance=False, rngs=rngs)
        else:
            self.layer_norm = None

    def __call__(self, x: Float[Array, "B T C"]) -> Float[Array, "B T2 D"]:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return gelu(x)


class FeatureEncoder(nnx.Module):
    """Raw samples (B, S) -> conv features (B, T, conv_dim[-1]); T = settings.num_output_rows(S)."""

    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.conv_layers = nnx.List([ConvLayer(settings, i, rngs) for i in range(len(settings.conv_dim))])

    def __call__(self, samples: Float[Array, "B S"]) -> Float[Array, "B T C"]:
        x = samples[:, :, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nnx.Module):
    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.layer_norm = layer_norm(settings.conv_dim[-1], settings.layer_norm_eps, rngs)
        self.projection = linear(settings.conv_dim[-1], settings.hidden_size, rngs)

    def __call__(self, x: Float[Array, "B T C"]) -> Float[Array, "B T H"]:
        return self.projection(self.layer_norm(x))


class PositionalConvEmbedding(nnx.Module):
    """Grouped conv over time with weight norm: kernel = g * v / ||v||, norm per kernel tap.

    torch stores v as (H_out, H_in/G, K) and g as (1, 1, K) (weight_norm dim=2); here v is
    kept in Flax conv layout (K, H_in/G, H_out) and g as (K,).
    """

    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        k, h, g = settings.num_conv_pos_embeddings, settings.hidden_size, settings.num_conv_pos_embedding_groups
        self.kernel_size, self.groups = k, g
        self.weight_v = nnx.Param(jax.random.normal(rngs.params(), (k, h // g, h)) * (h // g * k) ** -0.5)
        self.weight_g = nnx.Param(jnp.sqrt(jnp.sum(self.weight_v[...] ** 2, axis=(1, 2))))
        self.bias = nnx.Param(jnp.zeros((h,)))

    def kernel(self) -> Float[Array, "K Hg H"]:
        v = self.weight_v[...]
        norm = jnp.sqrt(jnp.sum(v ** 2, axis=(1, 2), keepdims=True))
        return self.weight_g[...][:, None, None] * v / norm

    def __call__(self, x: Float[Array, "B T H"]) -> Float[Array, "B T H"]:
        pad = self.kernel_size // 2
        y = jax.lax.conv_general_dilated(
            x, self.kernel(), window_strides=(1,), padding=[(pad, pad)],
            dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=self.groups,
            precision=PRECISION)
        if self.kernel_size % 2 == 0:
            y = y[:, :-1]  # symmetric padding of an even kernel yields one extra frame
        return gelu(y + self.bias[...])


class SelfAttention(nnx.Module):
    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        h = settings.hidden_size
        self.num_heads = settings.num_attention_heads
        self.q_proj, self.k_proj = linear(h, h, rngs), linear(h, h, rngs)
        self.v_proj, self.out_proj = linear(h, h, rngs), linear(h, h, rngs)

    def __call__(self, x: Float[Array, "B T H"]) -> Float[Array, "B T H"]:
        b, t, h = x.shape
        split = lambda y: y.reshape(b, t, self.num_heads, h // self.num_heads)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = jnp.einsum("bqnd,bknd->bnqk", q, k, precision=PRECISION) * (h // self.num_heads) ** -0.5
        weights = jax.nn.softmax(scores, axis=-1)
        out = jnp.einsum("bnqk,bknd->bqnd", weights, v, precision=PRECISION)
        return self.out_proj(out.reshape(b, t, h))


class FeedForward(nnx.Module):
    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.intermediate_dense = linear(settings.hidden_size, settings.intermediate_size, rngs)
        self.output_dense = linear(settings.intermediate_size, settings.hidden_size, rngs)

    def __call__(self, x: Float[Array, "B T H"]) -> Float[Array, "B T H"]:
        return self.output_dense(gelu(self.intermediate_dense(x)))


class EncoderLayer(nnx.Module):
    """One transformer block; `stable` selects pre-LN (True) or post-LN (False) order."""

    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.stable = settings.do_stable_layer_norm
        self.attention = SelfAttention(settings, rngs)
        self.layer_norm = layer_norm(settings.hidden_size, settings.layer_norm_eps, rngs)
        self.feed_forward = FeedForward(settings, rngs)
        self.final_layer_norm = layer_norm(settings.hidden_size, settings.layer_norm_eps, rngs)

    def __call__(self, x: Float[Array, "B T H"]) -> Float[Array, "B T H"]:
        if self.stable:
            x = x + self.attention(self.layer_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nnx.Module):
    """Positional conv + the transformer stack.

    The layers are one EncoderLayer whose parameters carry a leading layer axis (built
    with vmap, run with scan): tracing and compiling cost one layer, not 12-48.
    """

    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.stable = settings.do_stable_layer_norm
        self.pos_conv_embed = PositionalConvEmbedding(settings, rngs)
        self.layer_norm = layer_norm(settings.hidden_size, settings.layer_norm_eps, rngs)

        @nnx.split_rngs(splits=settings.num_hidden_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def stacked_layers(layer_rngs: nnx.Rngs) -> EncoderLayer:
            return EncoderLayer(settings, layer_rngs)

        self.layers = stacked_layers(rngs)

    def __call__(self, x: Float[Array, "B T H"]) -> Float[Array, "B T H"]:
        x = x + self.pos_conv_embed(x)
        if not self.stable:
            x = self.layer_norm(x)

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def run_layers(h: Array, layer: EncoderLayer) -> Array:
            return layer(h)

        x = run_layers(x, self.layers)
        return self.layer_norm(x) if self.stable else x


class Wav2Vec2Model(nnx.Module):
    """Normalised samples (B, S) -> last hidden state (B, T, hidden_size), T = num_output_rows(S).

    Input normalisation (preprocessor_config.json) is not applied here, as in torch;
    `wav2vec2_features` applies it (see `LoadedWav2Vec2`).
    """

    def __init__(self, settings: Wav2Vec2Settings, rngs: nnx.Rngs):
        self.settings = settings
        self.feature_extractor = FeatureEncoder(settings, rngs)
        self.feature_projection = FeatureProjection(settings, rngs)
        self.encoder = Encoder(settings, rngs)

    def __call__(self, samples: Float[Array, "B S"]) -> Float[Array, "B T H"]:
        return self.encoder(self.feature_projection(self.feature_extractor(samples)))
