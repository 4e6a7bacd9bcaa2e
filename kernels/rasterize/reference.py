"""Reference tile compositor in plain JAX: the ground truth for the Pallas kernels.

It walks one camera's sorted intersection list one entry at a time (lax.scan) and
composites that Gaussian onto the 16x16 pixels of its tile, front to back, with
gsplat's rules: pixel centres at +0.5; sigma = 0.5 (a dx^2 + c dy^2) + b dx dy;
alpha = min(0.999, o exp(-sigma)); skip sigma < 0 or alpha < 1/255; a pixel stops
before the Gaussian that would bring its transmittance to <= 1e-4. Differentiable by
plain autodiff. Readable rather than fast.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .binning import TILE_SIZE, Bins, tile_grid

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
TILE_PIXELS = TILE_SIZE * TILE_SIZE


def tile_pixel_centres(tile, tiles_x: int):
    """Pixel-centre coordinates (px, py), each (256,), of tile index `tile` (row-major)."""
    p = jnp.arange(TILE_PIXELS)
    px = (tile % tiles_x) * TILE_SIZE + p % TILE_SIZE + 0.5
    py = (tile // tiles_x) * TILE_SIZE + p // TILE_SIZE + 0.5
    return px.astype(jnp.float32), py.astype(jnp.float32)


def composite(means2d, conics, opacities, features, bins: Bins, width: int, height: int):
    """One camera. means2d (N,2), conics (N,3), opacities (N,), features (N,F) ->
    (accumulated features (H,W,F), transmittance (H,W))."""
    tiles_x, tiles_y = tile_grid(width, height)
    n_tiles = tiles_x * tiles_y
    n_feat = features.shape[-1]
    n = means2d.shape[0]

    def step(carry, entry):
        acc, trans, done = carry
        tile, gid = entry
        live = tile < n_tiles
        tile = jnp.minimum(tile, n_tiles - 1)
        g = jnp.minimum(gid, n - 1)
        px, py = tile_pixel_centres(tile, tiles_x)
        dx, dy = means2d[g, 0] - px, means2d[g, 1] - py
        a, b, c = conics[g, 0], conics[g, 1], conics[g, 2]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = jnp.minimum(MAX_ALPHA, opacities[g] * jnp.exp(-sigma))
        t_old, done_old = trans[tile], done[tile]
        use = live & ~done_old & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        t_next = t_old * (1.0 - alpha)
        stop = use & (t_next <= MIN_TRANSMITTANCE)
        hit = use & ~stop
        weight = jnp.where(hit, alpha * t_old, 0.0)
        acc = acc.at[tile].set(acc[tile] + features[g][None, :] * weight[:, None])
        trans = trans.at[tile].set(jnp.where(hit, t_next, t_old))
        done = done.at[tile].set(done_old | stop)
        return (acc, trans, done), None

    init = (jnp.zeros((n_tiles, TILE_PIXELS, n_feat), features.dtype),
            jnp.ones((n_tiles, TILE_PIXELS), features.dtype),
            jnp.zeros((n_tiles, TILE_PIXELS), bool))
    (acc, trans, _), _ = jax.lax.scan(step, init, (bins.tile_ids, bins.gaussian_ids))
    return tiles_to_image(acc, tiles_x, tiles_y, width, height), \
        tiles_to_image(trans[..., None], tiles_x, tiles_y, width, height)[..., 0]


def tiles_to_image(tiles, tiles_x: int, tiles_y: int, width: int, height: int):
    """(n_tiles, 256, F) tile-major pixels -> (height, width, F) image."""
    f = tiles.shape[-1]
    img = tiles.reshape(tiles_y, tiles_x, TILE_SIZE, TILE_SIZE, f).transpose(0, 2, 1, 3, 4)
    return img.reshape(tiles_y * TILE_SIZE, tiles_x * TILE_SIZE, f)[:height, :width]
