"""Per-Gaussian compositing math shared by the Triton and Mosaic kernels.

A kernel program owns one 16x16 tile and walks the tile's depth-sorted Gaussians in
chunks. Each Gaussian arrives as RECORD scalars read by the backend (Triton: from global
memory; Mosaic: from an SMEM chunk):
  [mean_x, mean_y, conic_a, conic_b, conic_c, opacity, feature_0 .. feature_{F-1}, 0..]
Pixel state is held in vectors of any shape (Triton (256,), Mosaic (2, 128)); the flat
row-major index inside the tile gives the pixel. Masks are float32 (1 = set) because
both backends carry float vectors through loops more reliably than booleans.
The rules are gsplat's (reference.py beside this file is the ground truth);
expressions are written in the same order so float32 results agree to rounding.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from .binning import TILE_SIZE as TILE
from .reference import ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE  # noqa: F401 (gsplat's rules)

GEOM = 6                 # mean_x, mean_y, conic_a, conic_b, conic_c, opacity


def record_size(n_feat: int) -> int:
    """Scalars per record: GEOM + n_feat rounded up to a power of two."""
    return 1 << (GEOM + n_feat - 1).bit_length()


class PixelState(NamedTuple):
    acc: tuple            # F vectors: accumulated features
    trans: jnp.ndarray    # transmittance
    done: jnp.ndarray     # 1.0 once the pixel stopped


def pixel_centres(tile, tiles_x: int, shape: tuple[int, ...]):
    """Pixel-centre coordinates of tile `tile` as two float32 vectors of `shape`."""
    flat = jnp.zeros(shape, jnp.int32)
    stride = 1
    for axis in reversed(range(len(shape))):
        flat = flat + jax.lax.broadcasted_iota(jnp.int32, shape, axis) * stride
        stride *= shape[axis]
    # lax.rem/div (truncating) instead of % and //: operands are non-negative, and the
    # floor-division lowering needs sign(), which Mosaic cannot lower off-device.
    tile = jnp.asarray(tile, jnp.int32)
    px = jax.lax.rem(tile, tiles_x) * TILE + jax.lax.rem(flat, TILE)
    py = jax.lax.div(tile, tiles_x) * TILE + jax.lax.div(flat, TILE)
    return px.astype(jnp.float32) + 0.5, py.astype(jnp.float32) + 0.5


def init_state(shape, n_feat: int) -> PixelState:
    zeros = jnp.zeros(shape, jnp.float32)
    return PixelState(acc=tuple(zeros for _ in range(n_feat)),
                      trans=jnp.ones(shape, jnp.float32), done=zeros)


class _Eval(NamedTuple):
    dx: jnp.ndarray
    dy: jnp.ndarray
    gauss: jnp.ndarray    # exp(-sigma)
    raw: jnp.ndarray      # opacity * exp(-sigma) before the 0.999 clamp
    alpha: jnp.ndarray
    hit: jnp.ndarray      # bool: this Gaussian is composited at the pixel
    stop: jnp.ndarray     # bool: the pixel stops before this Gaussian
    t_next: jnp.ndarray


def _evaluate(rec: Sequence, state: PixelState, px, py) -> _Eval:
    mx, my, a, b, c, opacity = rec[:GEOM]
    dx, dy = mx - px, my - py
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    gauss = jnp.exp(-sigma)
    raw = opacity * gauss
    alpha = jnp.minimum(MAX_ALPHA, raw)
    use = (state.done < 0.5) & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    t_next = state.trans * (1.0 - alpha)
    stop = use & (t_next <= MIN_TRANSMITTANCE)
    return _Eval(dx, dy, gauss, raw, alpha, use & ~stop, stop, t_next)


def forward_step(state: PixelState, rec: Sequence, px, py) -> PixelState:
    """Composite one Gaussian (record scalars `rec`) onto the pixel vectors."""
    ev = _evaluate(rec, state, px, py)
    weight = jnp.where(ev.hit, ev.alpha * state.trans, 0.0)
    feats = rec[GEOM:GEOM + len(state.acc)]
    acc = tuple(acc + f * weight for acc, f in zip(state.acc, feats))
    return PixelState(acc=acc, trans=jnp.where(ev.hit, ev.t_next, state.trans),
                      done=jnp.where(ev.stop, 1.0, state.done))


def forward_chunk(state: PixelState, read: Callable[[jnp.ndarray], list], count,
                  px, py) -> PixelState:
    """Composite records read(0) .. read(count - 1) in order."""
    return jax.lax.fori_loop(0, count, lambda i, s: forward_step(s, read(i), px, py), state)


def num_chunks(count, chunk: int):
    """ceil(count / chunk) for a non-negative int32 scalar."""
    return jax.lax.div(count + (chunk - 1), chunk)


def all_done(state: PixelState) -> jnp.ndarray:
    return jnp.min(state.done) > 0.5


class Cotangents(NamedTuple):
    """Per-pixel forward results and output cotangents a backward program needs."""
    final_acc: tuple      # F vectors: the forward's accumulated features
    final_trans: jnp.ndarray
    d_acc: tuple          # F vectors: dL/d accumulated feature
    d_trans: jnp.ndarray  # dL/d final transmittance


def backward_step(state: PixelState, rec: Sequence, px, py, cot: Cotangents):
    """Recompute one forward step and return (new state, gradient scalars of the record:
    [d mean_x, d mean_y, d conic_a, d conic_b, d conic_c, d opacity, d features...])."""
    ev = _evaluate(rec, state, px, py)
    weight = jnp.where(ev.hit, ev.alpha * state.trans, 0.0)
    feats = rec[GEOM:GEOM + len(state.acc)]
    acc = tuple(acc + f * weight for acc, f in zip(state.acc, feats))
    d_feats = [jnp.sum(g * weight) for g in cot.d_acc]
    # alpha_i enters its own term f T_i and scales every later term and T_final by
    # (1 - alpha_i): d/d alpha_i = f T_i - (later sum + T_final dL/dT) / (1 - alpha_i).
    later = sum(g * (fin - a) for g, fin, a in zip(cot.d_acc, cot.final_acc, acc))
    own = sum(g * f for g, f in zip(cot.d_acc, feats)) * state.trans
    d_alpha = own - (later + cot.d_trans * cot.final_trans) / (1.0 - ev.alpha)
    d_raw = jnp.where(ev.hit & (ev.raw < MAX_ALPHA), d_alpha, 0.0)
    d_opacity = jnp.sum(d_raw * ev.gauss)
    d_sigma = -d_raw * ev.raw
    a, b, c = rec[2], rec[3], rec[4]
    grads = [jnp.sum(d_sigma * (a * ev.dx + b * ev.dy)),
             jnp.sum(d_sigma * (c * ev.dy + b * ev.dx)),
             jnp.sum(d_sigma * 0.5 * ev.dx * ev.dx),
             jnp.sum(d_sigma * ev.dx * ev.dy),
             jnp.sum(d_sigma * 0.5 * ev.dy * ev.dy),
             d_opacity, *d_feats]
    new = PixelState(acc=acc, trans=jnp.where(ev.hit, ev.t_next, state.trans),
                     done=jnp.where(ev.stop, 1.0, state.done))
    return new, grads


def backward_chunk(state: PixelState, read, write, count, px, py, cot: Cotangents):
    """Walk records 0 .. count-1 front to back; write(i, grads) stores each gradient."""
    def body(i, s):
        s, grads = backward_step(s, read(i), px, py, cot)
        write(i, grads)
        return s
    return jax.lax.fori_loop(0, count, body, state)
