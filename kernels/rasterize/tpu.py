"""Mosaic (TPU) tile kernels: grid = cameras x tiles; each tile's first record slot and
count arrive by scalar prefetch (SMEM); its records are DMA'd from HBM one chunk at a
time into SMEM, where scalar reads are cheap and dynamic. Pixels are a (2, 128) vector
(one vreg row pair) so image blocks are (ROWS, 2, 128) with full minor dims. The
backward gathers a chunk's gradient records in SMEM and DMAs the whole chunk back;
chunks never span tiles (layout.py), so programs never write the same slot.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from . import chunk_math as cm
from .gpu import out_rows

PIXELS = (2, 128)
CHUNK = 32


def _interpret_params(interpret: bool):
    return pltpu.InterpretParams() if interpret else False


def _chunk_copy(src_hbm, dst, sem, cam, slot0, r):
    return pltpu.make_async_copy(src_hbm.at[cam, pl.ds(slot0 * r, CHUNK * r)], dst, sem)


def _fwd_kernel(first_ref, count_ref, rec_hbm, out_ref, buf, sem, *, n_feat, n_tiles,
                tiles_x, r):
    cam, tile = pl.program_id(0), pl.program_id(1)
    first, count = first_ref[cam * n_tiles + tile], count_ref[cam * n_tiles + tile]
    px, py = cm.pixel_centres(tile, tiles_x, PIXELS)

    def read(i):
        return [buf[i * r + k] for k in range(cm.GEOM + n_feat)]

    def cond(carry):
        c, state = carry
        return (c * CHUNK < count) & jnp.logical_not(cm.all_done(state))

    def body(carry):
        c, state = carry
        copy = _chunk_copy(rec_hbm, buf, sem, cam, first + c * CHUNK, r)
        copy.start()
        copy.wait()
        n = jnp.minimum(CHUNK, count - c * CHUNK)
        return c + 1, cm.forward_chunk(state, read, n, px, py)

    _, state = jax.lax.while_loop(cond, body, (0, cm.init_state(PIXELS, n_feat)))
    for k in range(n_feat):
        out_ref[k] = state.acc[k]
    out_ref[n_feat] = state.trans


def forward(first, count, records, *, n_feat, tiles_x, interpret):
    """first/count (B, T) int32, records (B, S*R) -> image blocks (B, T, ROWS, 2, 128)."""
    batch, n_tiles = first.shape
    rows, r = out_rows(n_feat), cm.record_size(n_feat)
    kernel = functools.partial(_fwd_kernel, n_feat=n_feat, n_tiles=n_tiles,
                               tiles_x=tiles_x, r=r)
    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=2,
        grid=(batch, n_tiles),
        in_specs=[pl.BlockSpec(memory_space=pl.ANY)],
        out_specs=pl.BlockSpec((None, None, rows) + PIXELS,
                               lambda b, t, *_: (b, t, 0, 0, 0)),
        scratch_shapes=[pltpu.SMEM((CHUNK * r,), jnp.float32), pltpu.SemaphoreType.DMA],
    )
    return pl.pallas_call(
        kernel,
        grid_spec=grid_spec,
        out_shape=jax.ShapeDtypeStruct((batch, n_tiles, rows) + PIXELS, jnp.float32),
        interpret=_interpret_params(interpret),
        name="gaussian_raster_fwd_tpu",
    )(first.reshape(-1), count.reshape(-1), records)


def _bwd_kernel(first_ref, count_ref, rec_hbm, img_ref, cot_ref, grad_hbm, buf, gbuf,
                sems, *, n_feat, n_tiles, tiles_x, r):
    cam, tile = pl.program_id(0), pl.program_id(1)
    first, count = first_ref[cam * n_tiles + tile], count_ref[cam * n_tiles + tile]
    px, py = cm.pixel_centres(tile, tiles_x, PIXELS)
    cot = cm.Cotangents(final_acc=tuple(img_ref[k] for k in range(n_feat)),
                        final_trans=img_ref[n_feat],
                        d_acc=tuple(cot_ref[k] for k in range(n_feat)),
                        d_trans=cot_ref[n_feat])

    def read(i):
        return [buf[i * r + k] for k in range(cm.GEOM + n_feat)]

    def write(i, grads):
        for k, g in enumerate(grads):
            gbuf[i * r + k] = g

    def body(c, state):
        slot0 = first + c * CHUNK
        copy_in = _chunk_copy(rec_hbm, buf, sems.at[0], cam, slot0, r)
        copy_in.start()
        copy_in.wait()
        n = jnp.minimum(CHUNK, count - c * CHUNK)
        state = cm.backward_chunk(state, read, write, n, px, py, cot)
        copy_out = pltpu.make_async_copy(gbuf, grad_hbm.at[cam, pl.ds(slot0 * r, CHUNK * r)],
                                         sems.at[1])
        copy_out.start()
        copy_out.wait()
        return state

    jax.lax.fori_loop(0, cm.num_chunks(count, CHUNK), body, cm.init_state(PIXELS, n_feat))


def backward(first, count, records, images, cotangents, *, n_feat, tiles_x, interpret):
    """Per-record gradients (B, S*R), written chunk by chunk."""
    batch, n_tiles = first.shape
    rows, r = out_rows(n_feat), cm.record_size(n_feat)
    kernel = functools.partial(_bwd_kernel, n_feat=n_feat, n_tiles=n_tiles,
                               tiles_x=tiles_x, r=r)
    image_spec = pl.BlockSpec((None, None, rows) + PIXELS, lambda b, t, *_: (b, t, 0, 0, 0))
    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=2,
        grid=(batch, n_tiles),
        in_specs=[pl.BlockSpec(memory_space=pl.ANY), image_spec, image_spec],
        out_specs=pl.BlockSpec(memory_space=pl.ANY),
        scratch_shapes=[pltpu.SMEM((CHUNK * r,), jnp.float32),
                        pltpu.SMEM((CHUNK * r,), jnp.float32),
                        pltpu.SemaphoreType.DMA((2,))],
    )
    return pl.pallas_call(
        kernel,
        grid_spec=grid_spec,
        out_shape=jax.ShapeDtypeStruct(records.shape, jnp.float32),
        interpret=_interpret_params(interpret),
        name="gaussian_raster_bwd_tpu",
    )(first.reshape(-1), count.reshape(-1), records,
      images.reshape(batch, n_tiles, rows, *PIXELS),
      cotangents.reshape(batch, n_tiles, rows, *PIXELS))
