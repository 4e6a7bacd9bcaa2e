"""Transformer pieces shared by the motion models (Flax NNX).

Attention takes an explicit boolean mask (True = may attend) and an optional additive
bias, so alignment masks, padding masks and FaceFormer's ALiBi-style bias all go through
one readable implementation. Positional encodings are plain functions of the frame index.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float


def sinusoidal_embedding(positions: Float[Array, "*N"], dim: int, max_period: float = 10000.0
                         ) -> Float[Array, "*N dim"]:
    """Transformer sinusoidal embedding of (possibly fractional) positions; dim even."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.asarray(positions, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def periodic_positional_encoding(num_frames: int, dim: int, period: int) -> Float[Array, "T dim"]:
    """FaceFormer's periodic positional encoding: the sinusoidal code of (t mod period), so
    the model sees the same codes at any length (it generalises to long audio)."""
    return sinusoidal_embedding(jnp.arange(num_frames) % period, dim)


def alignment_mask(num_frames: int, num_audio: int, steps_per_frame: int, radius: int
                   ) -> Bool[Array, "T Ta"]:
    """Frame t may attend audio rows of frames t - radius .. t + radius (radius 0 is
    DiffPoseTalk's strict diagonal: frame t sees only its own `steps_per_frame` rows)."""
    frame_of_row = jnp.arange(num_audio) // steps_per_frame
    return jnp.abs(jnp.arange(num_frames)[:, None] - frame_of_row[None, :]) <= radius


def alibi_causal_bias(num_frames: int, num_heads: int, period: int) -> Float[Array, "H T T"]:
    """FaceFormer's biased causal mask: frame i attends j <= i with the penalty
    -m_h * floor((i - j) / period), head slopes m_h = 2^(-8 h / H); future frames get
    -1e9 (finite, so gradients stay finite; combine with a boolean mask for padding)."""
    i = jnp.arange(num_frames)[:, None]
    j = jnp.arange(num_frames)[None, :]
    slopes = 2.0 ** (-8.0 * jnp.arange(1, num_heads + 1) / num_heads)
    distance = jnp.floor_divide(i - j, period).astype(jnp.float32)
    bias = -slopes[:, None, None] * distance
    return jnp.where(j <= i, bias, -1e9)


class Attention(nnx.Module):
    """Multi-head attention; queries from x, keys/values from `memory`."""

    def __init__(self, dim: int, num_heads: int, rngs: nnx.Rngs, memory_dim: int | None = None):
        if dim % num_heads:
            raise ValueError(f"model width {dim} is not divisible by {num_heads} heads")
        memory_dim = dim if memory_dim is None else memory_dim
        self.num_heads = num_heads
        self.query = nnx.Linear(dim, dim, rngs=rngs)
        self.key = nnx.Linear(memory_dim, dim, rngs=rngs)
        self.value = nnx.Linear(memory_dim, dim, rngs=rngs)
        self.out = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "B Tq D"], memory: Float[Array, "B Tk M"],
                 mask: Bool[Array, "#B #H Tq Tk"], bias: Float[Array, "#B #H Tq Tk"] | None = None
                 ) -> Float[Array, "B Tq D"]:
        b, tq, d = x.shape
        heads = lambda y: y.reshape(b, y.shape[1], self.num_heads, d // self.num_heads)
        q, k, v = heads(self.query(x)), heads(self.key(memory)), heads(self.value(memory))
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d // self.num_heads)
        if bias is not None:
            logits = logits + bias
        logits = jnp.where(mask, logits, -1e30)
        # A query with no visible key (padding) gets uniform weights; its output is unused.
        weights = jax.nn.softmax(logits, axis=-1)
        return self.out(jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(b, tq, d))


class FeedForward(nnx.Module):
    def __init__(self, dim: int, hidden: int, rngs: nnx.Rngs):
        self.up = nnx.Linear(dim, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        return self.down(jax.nn.gelu(self.up(x)))


class EncoderLayer(nnx.Module):
    """Pre-LN transformer encoder layer (self-attention + feed-forward)."""

    def __init__(self, dim: int, num_heads: int, ff_mult: int, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = Attention(dim, num_heads, rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.ff = FeedForward(dim, ff_mult * dim, rngs)

    def __call__(self, x, mask, bias=None):
        h = self.norm1(x)
        x = x + self.attn(h, h, mask, bias)
        return x + self.ff(self.norm2(x))


def jit_init(factory, key: jax.Array) -> nnx.Module:
    """factory(rngs) -> module, initialised under jit (eager NNX init dispatches every small
    op separately: seconds on a busy CPU, milliseconds compiled)."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: factory(nnx.Rngs(0))))
    state = jax.jit(lambda k: nnx.state(factory(nnx.Rngs(k))))(key)
    return nnx.merge(graphdef, state)


class BoundState:
    """Calls fn(state, *args) with a module's state, read once: reading it (`nnx.state`)
    costs ~6 ms for the a2e models, too much to repeat for every streamed window.
    `refresh()` re-reads it after `nnx.update(model, ...)`; a jitted fn does not recompile."""

    def __init__(self, model: nnx.Module, fn):
        self.model, self.fn = model, fn
        self.refresh()

    def refresh(self) -> None:
        self.state = nnx.state(self.model)

    def __call__(self, *args):
        return self.fn(self.state, *args)


def jit_apply(model: nnx.Module, method: str = "__call__") -> BoundState:
    """A jitted pure function of the module's call: fn(*args) with the state as argument."""
    graphdef = nnx.graphdef(model)
    return BoundState(model, jax.jit(lambda s, *args: getattr(nnx.merge(graphdef, s), method)(*args)))
