"""Triton tile kernels (grid = cameras x tiles, 256 pixels per program).

Each program reads its tile's first record slot and count, walks the records in chunks
(stopping between chunks once every pixel is done, like gsplat's per-batch check) and
reads each record's scalars straight from global memory: all threads read the same
address, so loads are broadcasts served by L1. Image blocks hold the F accumulated
features and the transmittance as rows of a (OUT_ROWS, 256) block. The backward
program stores each record's gradient scalars into its own slot (no atomics).
On CPU the same kernels run with interpret=True.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from . import chunk_math as cm

PIXELS = (cm.TILE * cm.TILE,)
CHUNK = 32


def out_rows(n_feat: int) -> int:
    """Rows of an image block: F features + transmittance, padded to a power of two."""
    return 1 << n_feat.bit_length()


def _compiler_params():
    from jax.experimental.pallas import triton as pltriton
    return pltriton.CompilerParams(num_warps=8, num_stages=1)


def _reader(rec_ref, cam, r: int, n_feat: int):
    """Loads of one record's used scalars (the padding past GEOM + F is never read)."""
    def read(slot):
        return [rec_ref[cam, slot * r + k] for k in range(cm.GEOM + n_feat)]
    return read


def _fwd_kernel(first_ref, count_ref, rec_ref, out_ref, *, n_feat, tiles_x, r):
    cam, tile = pl.program_id(0), pl.program_id(1)
    first, count = first_ref[cam, tile], count_ref[cam, tile]
    px, py = cm.pixel_centres(tile, tiles_x, PIXELS)
    read = _reader(rec_ref, cam, r, n_feat)
    n_chunks = cm.num_chunks(count, CHUNK)

    def cond(carry):
        c, state = carry
        return (c < n_chunks) & jnp.logical_not(cm.all_done(state))

    def body(carry):
        c, state = carry
        base = first + c * CHUNK
        n = jnp.minimum(CHUNK, count - c * CHUNK)
        return c + 1, cm.forward_chunk(state, lambda i: read(base + i), n, px, py)

    _, state = jax.lax.while_loop(cond, body, (0, cm.init_state(PIXELS, n_feat)))
    for k in range(n_feat):
        out_ref[k, :] = state.acc[k]
    out_ref[n_feat, :] = state.trans


def forward(first, count, records, *, n_feat, tiles_x, interpret):
    """first/count (B, T) int32, records (B, S*R) -> image blocks (B, T, OUT_ROWS, 256)."""
    batch, n_tiles = first.shape
    rows = out_rows(n_feat)
    kernel = functools.partial(_fwd_kernel, n_feat=n_feat, tiles_x=tiles_x,
                               r=cm.record_size(n_feat))
    return pl.pallas_call(
        kernel,
        grid=(batch, n_tiles),
        in_specs=[pl.BlockSpec(first.shape, lambda b, t: (0, 0)),
                  pl.BlockSpec(count.shape, lambda b, t: (0, 0)),
                  pl.BlockSpec(records.shape, lambda b, t: (0, 0))],
        out_specs=pl.BlockSpec((None, None, rows) + PIXELS, lambda b, t: (b, t, 0, 0)),
        out_shape=jax.ShapeDtypeStruct((batch, n_tiles, rows) + PIXELS, jnp.float32),
        compiler_params=None if interpret else _compiler_params(),
        interpret=interpret,
        name="gaussian_raster_fwd",
    )(first, count, records)


def _bwd_kernel(first_ref, count_ref, rec_ref, img_ref, cot_ref, grad_ref, *, n_feat,
                tiles_x, r):
    cam, tile = pl.program_id(0), pl.program_id(1)
    first, count = first_ref[cam, tile], count_ref[cam, tile]
    px, py = cm.pixel_centres(tile, tiles_x, PIXELS)
    read = _reader(rec_ref, cam, r, n_feat)
    cot = cm.Cotangents(final_acc=tuple(img_ref[k, :] for k in range(n_feat)),
                        final_trans=img_ref[n_feat, :],
                        d_acc=tuple(cot_ref[k, :] for k in range(n_feat)),
                        d_trans=cot_ref[n_feat, :])

    def write(slot, grads):
        for k, g in enumerate(grads):
            grad_ref[cam, slot * r + k] = g

    cm.backward_chunk(cm.init_state(PIXELS, n_feat), lambda i: read(first + i),
                      lambda i, g: write(first + i, g), count, px, py, cot)


def backward(first, count, records, images, cotangents, *, n_feat, tiles_x, interpret):
    """Per-record gradients (B, S*R); slots of padding records are left unwritten."""
    batch, n_tiles = first.shape
    rows = out_rows(n_feat)
    kernel = functools.partial(_bwd_kernel, n_feat=n_feat, tiles_x=tiles_x,
                               r=cm.record_size(n_feat))
    image_spec = pl.BlockSpec((None, None, rows) + PIXELS, lambda b, t: (b, t, 0, 0))
    return pl.pallas_call(
        kernel,
        grid=(batch, n_tiles),
        in_specs=[pl.BlockSpec(first.shape, lambda b, t: (0, 0)),
                  pl.BlockSpec(count.shape, lambda b, t: (0, 0)),
                  pl.BlockSpec(records.shape, lambda b, t: (0, 0)),
                  image_spec, image_spec],
        out_specs=pl.BlockSpec(records.shape, lambda b, t: (0, 0)),
        out_shape=jax.ShapeDtypeStruct(records.shape, jnp.float32),
        compiler_params=None if interpret else _compiler_params(),
        interpret=interpret,
        name="gaussian_raster_bwd",
    )(first, count, records, images, cotangents)
