"""Tile binning and depth sort with a static intersection buffer (one camera).

Each visible Gaussian overlaps a rectangle of 16x16 tiles (gsplat's `_isect_tiles`
rule: floor/ceil of (mean -/+ radius) / 16, clamped to the grid). Its intersections are
generated in Gaussian order into a buffer of `capacity` slots, then sorted by
(tile, depth) with a stable sort, which reproduces gsplat's 64-bit radix-sort order
(equal depths keep Gaussian order). When more intersections exist than slots, the
excess is not rendered and `overflow` is set: callers must check it (the public
`rasterize` re-runs with a larger buffer or raises).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

TILE_SIZE = 16   # pixels per tile side (gsplat's tile size)


def tile_grid(width: int, height: int) -> tuple[int, int]:
    """(tiles_x, tiles_y) of TILE_SIZE x TILE_SIZE tiles covering the image."""
    return -(-width // TILE_SIZE), -(-height // TILE_SIZE)


class Bins(NamedTuple):
    """Sorted intersection list of one camera (M = capacity, T = number of tiles)."""
    tile_ids: jnp.ndarray       # (M,) int32 tile of each sorted slot; T for empty slots
    gaussian_ids: jnp.ndarray   # (M,) int32 Gaussian of each sorted slot; N for empty
    tile_starts: jnp.ndarray    # (T + 1,) int32 first sorted slot of each tile
    sort_perm: jnp.ndarray      # (M,) int32 generation slot of each sorted slot
    gaussian_ends: jnp.ndarray  # (N,) int32 end (exclusive) of each Gaussian's run of
                                # generation slots; runs are contiguous, in Gaussian order
    n_intersections: jnp.ndarray  # () int32 intersections needed (may exceed M)
    overflow: jnp.ndarray       # () bool n_intersections > M


def tile_rects(means2d, radii, tiles_x: int, tiles_y: int):
    """Tile rectangles [x0, x1) x [y0, y1) (each (N,) int32) and counts (N,) int32."""
    centre = means2d / TILE_SIZE
    half = radii.astype(means2d.dtype) / TILE_SIZE
    lo = jnp.floor(centre - half).astype(jnp.int32)
    hi = jnp.ceil(centre + half).astype(jnp.int32)
    x0, x1 = (jnp.clip(v[:, 0], 0, tiles_x) for v in (lo, hi))
    y0, y1 = (jnp.clip(v[:, 1], 0, tiles_y) for v in (lo, hi))
    visible = jnp.all(radii > 0, axis=-1)
    counts = jnp.where(visible, (x1 - x0) * (y1 - y0), 0)
    return x0, x1, y0, y1, counts


def intersection_count(means2d, radii, tiles_x: int, tiles_y: int) -> jnp.ndarray:
    """Number of tile intersections () int32 of one camera: the buffer size it needs."""
    return jnp.sum(tile_rects(jax.lax.stop_gradient(means2d), radii, tiles_x, tiles_y)[4])


def bin_gaussians(means2d, radii, depths, tiles_x: int, tiles_y: int, capacity: int) -> Bins:
    """means2d (N,2), radii (N,2) int32, depths (N,) -> Bins with `capacity` slots."""
    means2d = jax.lax.stop_gradient(means2d)
    depths = jax.lax.stop_gradient(depths)
    n = depths.shape[0]
    n_tiles = tiles_x * tiles_y
    x0, x1, y0, y1, counts = tile_rects(means2d, radii, tiles_x, tiles_y)
    ends = jnp.cumsum(counts, dtype=jnp.int32)
    total = ends[-1] if n else jnp.int32(0)

    slot = jnp.arange(capacity, dtype=jnp.int32)
    # Slot k belongs to the last Gaussian whose run starts at or before k (a Gaussian
    # with an empty run shares its start with the next one, which wins).
    marks = jnp.zeros(capacity, jnp.int32).at[ends - counts].add(1, mode="drop")
    gid = jnp.cumsum(marks, dtype=jnp.int32) - 1
    used = slot < total
    g = jnp.minimum(gid, n - 1)
    local = slot - (ends[g] - counts[g])
    width = jnp.maximum(x1[g] - x0[g], 1)
    tile = (y0[g] + local // width) * tiles_x + x0[g] + local % width
    tile = jnp.where(used, tile, n_tiles).astype(jnp.int32)
    depth = jnp.where(used, depths[g], jnp.inf)
    gid = jnp.where(used, gid, n)

    if 0 < n and (n_tiles + 1) * n < 2 ** 31:
        # One int32 key per slot, tile * N + (the Gaussian's depth rank), sorted alone:
        # XLA:CPU sorts a single int32 array with a fast path (32k slots: ~1 ms, against
        # ~5-12 ms for the stable two-key sort of four arrays below). The ranks come from a
        # stable argsort of the N depths (equal depths keep Gaussian order), and a Gaussian
        # meets a tile at most once, so keys are unique and the order is the same as the
        # (tile, depth) stable sort's; Gaussian and generation slot are decoded from it.
        order = jnp.argsort(depths, stable=True).astype(jnp.int32)
        rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
        key = jnp.where(used, tile * n + rank[g], n_tiles * n)
        key = jax.lax.sort(key)
        tile = key // n
        gid = jnp.where(tile < n_tiles, order[key % n], n)
        g = jnp.minimum(gid, n - 1)
        local = ((tile // tiles_x - y0[g]) * jnp.maximum(x1[g] - x0[g], 1)
                 + tile % tiles_x - x0[g])
        # Empty slots sort last, in slot order, as the stable sort leaves them.
        perm = jnp.where(tile < n_tiles, ends[g] - counts[g] + local, slot)
    else:   # keys would overflow int32
        tile, _, gid, perm = jax.lax.sort((tile, depth, gid, slot), num_keys=2,
                                          is_stable=True)
    per_tile = jnp.zeros(n_tiles + 1, jnp.int32).at[tile].add(1)
    starts = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(per_tile[:-1], dtype=jnp.int32)])
    return Bins(tile_ids=tile, gaussian_ids=gid, tile_starts=starts, sort_perm=perm,
                gaussian_ends=ends, n_intersections=total, overflow=total > capacity)


def default_capacity(n_gaussians: int) -> int:
    """A first buffer guess (power of two, >= 1024): 4 tiles per Gaussian."""
    return next_power_of_two(max(1024, 4 * n_gaussians))


def next_power_of_two(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()
