"""custom_vjp glue: screen-space Gaussians + bins -> images, with a kernel backward.

Only compositing has a custom backward; projection, SH and the record gather stay in
plain JAX, so gradients reach means, quats, scales, colours and the viewmat by
autodiff. Kernels: "triton" (GPU, and interpret mode on CPU) or "mosaic" (TPU).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import gpu, layout as lay, tpu
from .binning import TILE_SIZE as TILE, Bins, tile_grid
from .reference import tiles_to_image

KERNELS = {"triton": (gpu, gpu.CHUNK), "mosaic": (tpu, tpu.CHUNK)}


def default_kernel() -> tuple[str, bool]:
    """(kernel, interpret) for the default JAX backend."""
    platform = jax.default_backend()
    if platform == "tpu":
        return "mosaic", False
    return "triton", platform != "gpu"


def composite_pallas(means2d, conics, opacities, features, bins: Bins, *, width: int,
                     height: int, kernel: str | None = None, interpret: bool | None = None):
    """Batched (B cameras): means2d (B,N,2), conics (B,N,3), opacities (B,N),
    features (B,N,F), bins (batched Bins) -> (acc (B,H,W,F), transmittance (B,H,W))."""
    if kernel is None:
        kernel, default_interpret = default_kernel()
        interpret = default_interpret if interpret is None else interpret
    interpret = bool(interpret)
    tiles_x, tiles_y = tile_grid(width, height)
    n_tiles = tiles_x * tiles_y
    module, chunk = KERNELS[kernel]
    layouts = jax.vmap(functools.partial(lay.chunk_layout, n_tiles=n_tiles, chunk=chunk))(bins)
    geom = jnp.concatenate([means2d, conics, opacities[..., None]], axis=-1)
    static = (module, chunk, tiles_x, tiles_y, width, height, interpret)
    return _composite(static, geom, features, bins, layouts)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _composite(static, geom, features, bins, layouts):
    return _forward(static, geom, features, bins, layouts)[0]


def _forward(static, geom, features, bins, layouts):
    module, chunk, tiles_x, tiles_y, width, height, interpret = static
    n_tiles = tiles_x * tiles_y
    n_feat = features.shape[-1]
    records = jax.vmap(functools.partial(lay.pack_records, n_tiles=n_tiles, chunk=chunk))(
        geom, features, bins, layouts)
    blocks = module.forward(layouts.tile_first, layouts.tile_count, records, n_feat=n_feat,
                            tiles_x=tiles_x, interpret=interpret)
    images = _blocks_to_images(blocks, n_feat, tiles_x, tiles_y, width, height)
    return images, (records, blocks)


def _fwd(static, geom, features, bins, layouts):
    images, (records, blocks) = _forward(static, geom, features, bins, layouts)
    return images, (geom, features, bins, layouts, records, blocks)


def _bwd(static, residuals, cotangents):
    module, chunk, tiles_x, tiles_y, width, height, interpret = static
    geom, features, bins, layouts, records, blocks = residuals
    n_tiles = tiles_x * tiles_y
    batch, n, n_feat = features.shape
    d_acc, d_trans = cotangents
    d_blocks = _images_to_blocks(d_acc, d_trans, blocks.shape, tiles_x, tiles_y)
    grads = module.backward(layouts.tile_first, layouts.tile_count, records, blocks,
                            d_blocks, n_feat=n_feat, tiles_x=tiles_x, interpret=interpret)
    d_geom, d_features = jax.vmap(functools.partial(
        lay.unpack_gradients, n_gaussians=n, n_feat=n_feat, n_tiles=n_tiles))(
        grads, bins, layouts)
    zero_ints = jax.tree_util.tree_map(_zero_cotangent, (bins, layouts))
    return (d_geom, d_features, *zero_ints)


def _zero_cotangent(x):
    return jnp.zeros(x.shape, jax.dtypes.float0) if not jnp.issubdtype(
        x.dtype, jnp.floating) else jnp.zeros_like(x)


_composite.defvjp(_fwd, _bwd)


def _blocks_to_images(blocks, n_feat, tiles_x, tiles_y, width, height):
    """(B, T, ROWS, *pixels) -> (acc (B,H,W,F), trans (B,H,W))."""
    batch, n_tiles, rows = blocks.shape[:3]
    tiles = blocks.reshape(batch, n_tiles, rows, TILE * TILE).transpose(0, 1, 3, 2)
    img = jax.vmap(lambda t: tiles_to_image(t, tiles_x, tiles_y, width, height))(tiles)
    return img[..., :n_feat], img[..., n_feat]


def _images_to_blocks(d_acc, d_trans, shape, tiles_x, tiles_y):
    """Inverse layout of _blocks_to_images for cotangents (zero in padding)."""
    batch, n_tiles, rows = shape[:3]
    height, width = d_trans.shape[1:]
    img = jnp.concatenate([d_acc, d_trans[..., None]], axis=-1)
    img = jnp.pad(img, ((0, 0), (0, tiles_y * TILE - height), (0, tiles_x * TILE - width),
                        (0, rows - img.shape[-1])))
    img = img.reshape(batch, tiles_y, TILE, tiles_x, TILE, rows).transpose(0, 1, 3, 5, 2, 4)
    return img.reshape(shape)
