"""Vectorised tile compositor in plain JAX (the "tiles" backend of `rasterize`).

`reference.composite` walks the sorted intersection list one entry at a time (lax.scan):
exact and readable, but sequential, and its autodiff keeps every step's carry. This
compositor takes the same sorted list (kernels/rasterize/binning.py) and composites every tile at
once: the first `per_tile` entries of each tile are gathered into a (tiles, L, 256)
block and blended with an exclusive cumulative product of (1 - alpha), computed as a
cumulative sum of logs. The rules are gsplat's (alpha = min(0.999, o exp(-sigma)), skip
sigma < 0 or alpha < 1/255, stop before the Gaussian that would take the transmittance
to <= 1e-4; since transmittance only falls along the list, "every later Gaussian is
skipped" equals "skip where the inclusive transmittance is <= 1e-4").
A tile with more than `per_tile` entries would lose its farthest ones: `longest_tile`
tells the caller (rasterize re-runs or raises). Tiles are processed `tile_chunk` at a
time under jax.checkpoint, so the backward keeps one chunk's (L, 256) block at a time.
Gradients by plain autodiff.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from flashtalker_jax.kernels.rasterize.binning import Bins, tile_grid
from flashtalker_jax.kernels.rasterize.reference import (ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE,
                                              TILE_PIXELS, tile_pixel_centres, tiles_to_image)


def longest_tile(bins: Bins) -> jnp.ndarray:
    """Entries () int32 of the fullest tile: the `per_tile` this camera needs."""
    return jnp.max(bins.tile_starts[1:] - bins.tile_starts[:-1])


def _composite_block(tiles, ids, valid, means2d, conics, opacities, features, tiles_x):
    """tiles (T,), ids (T, L), valid (T, L) -> (features (T, 256, F), transmittance (T, 256))."""
    px, py = jax.vmap(lambda t: tile_pixel_centres(t, tiles_x))(tiles)  # (T, 256) each
    m, cn = means2d[ids], conics[ids]  # (T, L, 2), (T, L, 3)
    dx = m[..., 0:1] - px[:, None, :]
    dy = m[..., 1:2] - py[:, None, :]
    sigma = 0.5 * (cn[..., 0:1] * dx * dx + cn[..., 2:3] * dy * dy) + cn[..., 1:2] * dx * dy
    alpha = jnp.minimum(MAX_ALPHA, opacities[ids][..., None] * jnp.exp(-sigma))
    use = valid[..., None] & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = jnp.where(use, alpha, 0.0)
    log_keep = jnp.log1p(-alpha)
    log_incl = jnp.cumsum(log_keep, axis=1)
    hit = use & (log_incl > jnp.log(MIN_TRANSMITTANCE))
    weight = jnp.where(hit, alpha * jnp.exp(log_incl - log_keep), 0.0)  # (T, L, 256)
    acc = jnp.einsum("tlp,tlf->tpf", weight, features[ids])
    trans = jnp.exp(jnp.sum(jnp.where(hit, log_keep, 0.0), axis=1))
    return acc, trans


def composite(means2d, conics, opacities, features, bins: Bins, width: int, height: int, *,
              per_tile: int, tile_chunk: int):
    """One camera, same contract as reference.composite: means2d (N,2), conics (N,3),
    opacities (N,), features (N,F) -> (accumulated features (H,W,F), transmittance (H,W)).
    Only the first `per_tile` entries of each tile are composited (check longest_tile)."""
    tiles_x, tiles_y = tile_grid(width, height)
    n_tiles = tiles_x * tiles_y
    n = means2d.shape[0]
    capacity = bins.gaussian_ids.shape[0]
    starts, ends = bins.tile_starts[:-1], bins.tile_starts[1:]
    slot = starts[:, None] + jnp.arange(per_tile)[None, :]
    valid = slot < ends[:, None]
    ids = jnp.where(valid, bins.gaussian_ids[jnp.minimum(slot, capacity - 1)], 0)
    ids = jnp.minimum(ids, n - 1)
    chunk = min(tile_chunk, n_tiles)
    pad = -n_tiles % chunk
    tiles = jnp.arange(n_tiles + pad)
    ids = jnp.pad(ids, ((0, pad), (0, 0)))
    valid = jnp.pad(valid, ((0, pad), (0, 0)))

    @jax.checkpoint
    def block(args):
        t, i, v = args
        return _composite_block(t, i, v, means2d, conics, opacities, features, tiles_x)

    def chunks(a):
        return a.reshape((-1, chunk) + a.shape[1:])

    acc, trans = jax.lax.map(block, (chunks(tiles), chunks(ids), chunks(valid)))
    acc = acc.reshape((-1, TILE_PIXELS, features.shape[-1]))[:n_tiles]
    trans = trans.reshape((-1, TILE_PIXELS))[:n_tiles]
    return (tiles_to_image(acc, tiles_x, tiles_y, width, height),
            tiles_to_image(trans[..., None], tiles_x, tiles_y, width, height)[..., 0])
