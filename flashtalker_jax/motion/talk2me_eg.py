"""Talk2Me's Expression Generator (EG): audio -> FLAME [expr | jaw] per frame (Talk2Me
Sec. 4.3.1, 4.4 and appendix A.3), the third motion model beside the diffusion prior and
Audio2Param (same inputs, outputs and saved form: motion/tasks.py, task "talk2me_eg").

Reading of the paper, layer by layer (every encoder/decoder is a few linear layers with
ReLU, Fig. 10):
- Audio encoder: the frame's feature rows (steps_per_frame x D, log-mel or wav2vec2 here;
  the paper adds Wav2Lip features we do not have) and those of the `audio_context - 1`
  frames before it -> a (phonetic cue per frame). The "emotional cues" e come from the
  same encoding averaged causally over `emotion_frames` (about a second: prosody and
  emphasis, which drive brows and nods, change slower than phonemes).
- Expression encoder: a reference frame of the identity (its mean training [expr | jaw],
  normalised) -> s (style), one vector per sequence.
- Structured Temporal Fusion (Fig. 11): K-product fusion f_e = phi_E(a (x) e, a (x) s,
  e (x) s) (Eq. 8) and a feature gate G = sigmoid(W_g u) * W_u u over u = [a; e; s];
  [G; f_e] concatenated and projected, then a transformer temporal encoder.
  The outer products are taken of `fusion_rank`-dimensional projections, not of the d-wide
  features: at d = 96 one d x d product has 9,216 entries per frame and phi_E would need
  3 x 9,216 x 96 = 2.7 M weights (more than the rest of the model) and 3 x 9,216 floats
  per frame of activations; rank 8 keeps every pairwise interaction between 8 directions
  of each feature for 3 x 64 inputs (18 k weights).
- Region-aware decoding: a global decoder predicts every coefficient from the fused
  features; a multi-head attention over the fused temporal features followed by a
  regional decoder predicts the eye-related coefficients (`eye_ids`, chosen from the
  FLAME masks by `eye_coefficients`), merged with the global ones by a learnable
  per-coefficient weight.
- A parallel direct audio-to-expression stream (a -> all coefficients, no fusion, no
  attention) for sharp phoneme-synchronous lips, mixed with the main pathway by a
  learnable per-coefficient weight, then a light temporal smoothing layer (a learnable
  convex combination of the last `smooth_taps` frames per coefficient).
Loss (Eq. 11): L1 between predicted and true normalised motion, eye coefficients weighted
`eye_weight` times the others (`eye_weighted_l1`).

Everything is causal (frame t uses frames <= t: causal attention with FaceFormer's ALiBi
bias, causal audio context, causal emotion mean and smoothing), so the Audio2Param windows
of motion/inference.py (warm-up context of one PPE period, cross-fade) serve it unchanged;
with emotion_frames and smooth_taps at most that context (as the configs set them), a
window's first new frame has its full history.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float

from flashtalker_jax.motion.layers import (Attention, EncoderLayer, alibi_causal_bias,
                                           periodic_positional_encoding)
from flashtalker_jax.motion.losses import masked_mean


@dataclasses.dataclass(frozen=True)
class EGDims:
    motion_dim: int
    audio_dim: int
    reference_dim: int           # the reference frame's width (= motion_dim)
    eye_ids: tuple[int, ...]     # coefficients refined by the regional branch
    d_model: int = 96
    num_heads: int = 4
    fusion_rank: int = 8
    audio_context: int = 3
    emotion_frames: int = 25
    encoder_layers: int = 2
    ff_mult: int = 2
    period: int = 25
    smooth_taps: int = 3
    steps_per_frame: int = 2

    @classmethod
    def from_config(cls, model: ml_collections.ConfigDict, motion_dim: int, audio_dim: int,
                    reference_dim: int) -> "EGDims":
        fixed = {"motion_dim", "audio_dim", "reference_dim", "eye_ids"}
        names = {f.name for f in dataclasses.fields(cls)} - fixed
        return cls(motion_dim=motion_dim, audio_dim=audio_dim, reference_dim=reference_dim,
                   eye_ids=tuple(int(i) for i in model.eye_ids), **{k: model[k] for k in names})


def mlp(sizes: tuple[int, ...], rngs: nnx.Rngs) -> nnx.Sequential:
    """Linear layers with ReLU between them (the paper's shared encoder/decoder, Fig. 10)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nnx.Linear(a, b, rngs=rngs)] + ([jax.nn.relu] if i < len(sizes) - 2 else [])
    return nnx.Sequential(*layers)


def shift_frames(x: jax.Array, lag: int) -> jax.Array:
    """x (B, T, ...) delayed by `lag` frames along axis 1, zeros (or False) shifted in."""
    if lag == 0:
        return x
    lag = min(lag, x.shape[1])
    pad = jnp.zeros((x.shape[0], lag) + x.shape[2:], x.dtype)
    return jnp.concatenate([pad, x[:, :x.shape[1] - lag]], axis=1)


def causal_mean(x: Float[Array, "B T C"], mask: Bool[Array, "B T"], frames: int) -> Float[Array, "B T C"]:
    """Mean of x over the real frames among t - frames + 1 .. t (zero where there are none)."""
    w = mask[..., None].astype(x.dtype)
    total = jnp.cumsum(x * w, axis=1)
    count = jnp.cumsum(w, axis=1)
    total = total - shift_frames(total, frames)
    count = count - shift_frames(count, frames)
    return total / jnp.maximum(count, 1.0)


def causal_smooth(y: Float[Array, "B T P"], mask: Bool[Array, "B T"], logits: Float[Array, "K P"]
                  ) -> Float[Array, "B T P"]:
    """Per coefficient, softmax(logits) over lags 0..K-1 as a convex combination of the
    frame and its K-1 predecessors; padding frames drop out and the weights renormalise."""
    w = jax.nn.softmax(logits, axis=0)
    num = jnp.zeros_like(y)
    den = jnp.zeros_like(y)
    for lag in range(logits.shape[0]):
        m = shift_frames(mask, lag)[..., None].astype(y.dtype) * w[lag]
        num = num + m * shift_frames(y, lag)
        den = den + m
    return num / jnp.maximum(den, 1e-6)


def outer(x: Float[Array, "... R"], y: Float[Array, "... R"]) -> Float[Array, "... RR"]:
    """Kronecker (outer) product of the last axes, flattened."""
    return (x[..., :, None] * y[..., None, :]).reshape(*x.shape[:-1], x.shape[-1] * y.shape[-1])


class ExpressionGenerator(nnx.Module):
    def __init__(self, dims: EGDims, rngs: nnx.Rngs):
        d, r, p = dims.d_model, dims.fusion_rank, dims.motion_dim
        self.dims = dims
        frame_width = dims.audio_context * dims.steps_per_frame * dims.audio_dim
        self.audio_encoder = mlp((frame_width, d, d), rngs)
        self.emotion_encoder = mlp((d, d), rngs)
        self.expression_encoder = mlp((dims.reference_dim, d, d), rngs)
        self.rank_a, self.rank_e, self.rank_s = (nnx.Linear(d, r, rngs=rngs) for _ in range(3))
        self.phi_e = nnx.Linear(3 * r * r, d, rngs=rngs)
        self.gate = nnx.Linear(3 * d, d, rngs=rngs)
        self.gate_value = nnx.Linear(3 * d, d, rngs=rngs)
        self.merge = nnx.Linear(2 * d, d, rngs=rngs)
        self.position = nnx.Linear(d, d, rngs=rngs)
        self.temporal = nnx.List([EncoderLayer(d, dims.num_heads, dims.ff_mult, rngs)
                                  for _ in range(dims.encoder_layers)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.global_decoder = mlp((d, d, p), rngs)
        self.region_norm = nnx.LayerNorm(d, rngs=rngs)
        self.region_attention = Attention(d, dims.num_heads, rngs)
        self.region_decoder = mlp((d, d, len(dims.eye_ids)), rngs)
        self.region_logit = nnx.Param(jnp.zeros((len(dims.eye_ids),)))     # sigmoid(0): half regional
        self.direct = mlp((d, d, p), rngs)
        self.stream_logit = nnx.Param(jnp.zeros((p,)))                     # sigmoid(0): half each stream
        # Lag 0 starts at ~0.8 of the weight: smoothing begins light and is learnt.
        self.smooth_logits = nnx.Param(jnp.zeros((dims.smooth_taps, p)).at[0].set(2.0))

    def encode_audio(self, audio: Float[Array, "B Ta D"], frame_mask: Bool[Array, "B T"]):
        """Phonetic a (B, T, d) from this and the previous audio_context - 1 frames' rows, and
        the emotional cue e (B, T, d) from a's causal mean over emotion_frames."""
        b, t = frame_mask.shape
        rows = audio.reshape(b, t, -1)
        stacked = jnp.concatenate([shift_frames(rows, k) for k in range(self.dims.audio_context)], axis=-1)
        a = self.audio_encoder(stacked)
        e = self.emotion_encoder(causal_mean(a, frame_mask, self.dims.emotion_frames))
        return a, e

    def fuse(self, a, e, s):
        """Structured Temporal Fusion before the transformer: K-product embedding (Eq. 8) and
        gated embedding, concatenated and projected to d."""
        ar, er, sr = self.rank_a(a), self.rank_e(e), self.rank_s(s)
        k = self.phi_e(jnp.concatenate([outer(ar, er), outer(ar, sr), outer(er, sr)], axis=-1))
        u = jnp.concatenate([a, e, s], axis=-1)
        g = jax.nn.sigmoid(self.gate(u)) * self.gate_value(u)
        return self.merge(jnp.concatenate([g, k], axis=-1))

    def __call__(self, audio: Float[Array, "B Ta D"], reference: Float[Array, "B R"],
                 frame_mask: Bool[Array, "B T"]) -> Float[Array, "B T P"]:
        dims = self.dims
        b, t = frame_mask.shape
        chex.assert_shape(audio, (b, dims.steps_per_frame * t, dims.audio_dim))
        chex.assert_shape(reference, (b, dims.reference_dim))
        a, e = self.encode_audio(audio, frame_mask)
        s = jnp.broadcast_to(self.expression_encoder(reference)[:, None], a.shape)
        x = self.fuse(a, e, s) + self.position(periodic_positional_encoding(t, dims.d_model, dims.period))[None]
        causal = jnp.tril(jnp.ones((t, t), bool))[None] & frame_mask[:, None, :]
        mask = causal[:, None]
        bias = alibi_causal_bias(t, dims.num_heads, dims.period)[None]
        for layer in self.temporal:
            x = layer(x, mask, bias)
        h = self.norm(x)
        coarse = self.global_decoder(h)
        hr = self.region_norm(h)
        regional = self.region_decoder(h + self.region_attention(hr, hr, mask, bias))
        eye = jnp.asarray(dims.eye_ids)
        mix = jax.nn.sigmoid(self.region_logit[...])
        main = coarse.at[..., eye].set(mix * regional + (1 - mix) * coarse[..., eye])
        beta = jax.nn.sigmoid(self.stream_logit[...])
        fused = beta * main + (1 - beta) * self.direct(a)
        return causal_smooth(fused, frame_mask, self.smooth_logits[...])


def eye_coefficients(expr_dirs: np.ndarray, eye_vertex_ids: np.ndarray, min_share: float) -> tuple[int, ...]:
    """Expression coefficients that move mostly the eye region: those whose blendshape puts
    at least `min_share` of its squared displacement (summed over vertices) on
    `eye_vertex_ids` (FLAME_masks 'eye_region'). expr_dirs (V, 3, E). On the procedural
    head this picks eye_close (share 1.0) and brow_lower (0.81), not brow_raise (0.43,
    mostly forehead) nor any mouth component (<= 0.01)."""
    energy = np.sum(np.asarray(expr_dirs, np.float64) ** 2, axis=1)
    share = energy[np.asarray(eye_vertex_ids)].sum(0) / np.maximum(energy.sum(0), 1e-30)
    return tuple(int(i) for i in np.nonzero(share >= min_share)[0])


def eye_weights(motion_dim: int, eye_ids: tuple[int, ...], eye_weight: float) -> np.ndarray:
    """(motion_dim,) loss weight per coefficient: eye_weight on eye_ids, 1 elsewhere."""
    w = np.ones(motion_dim, np.float32)
    w[list(eye_ids)] = eye_weight
    return w


def eye_weighted_l1(pred: Float[Array, "B T P"], target: Float[Array, "B T P"], mask: Bool[Array, "B T"],
                    weights: Float[Array, "P"]) -> jax.Array:
    """Eq. 11's weighted L1: per frame sum_k w_k |pred_k - target_k| / sum_k w_k, mean over
    real frames (so the weights shift emphasis without changing the loss scale)."""
    per_frame = jnp.sum(weights * jnp.abs(pred - target), axis=-1) / jnp.sum(weights)
    return masked_mean(per_frame, mask)
