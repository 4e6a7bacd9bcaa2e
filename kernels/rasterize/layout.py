"""Chunk-aligned per-intersection records, built in XLA from the sorted bins.

Each tile's run of sorted intersections is placed at a multiple of `chunk`, so a chunk
never spans two tiles: kernels then read and write whole chunks without races (the
Mosaic kernel DMAs them). Records hold the Gaussian's screen geometry and features
(chunk_math.RECORD layout); padding records are zero (opacity 0: never composited).
The backward maps per-record gradients back to Gaussians with a deterministic
segmented scan (no scatter-add, so no atomics and bit-identical runs).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .binning import Bins
from .chunk_math import GEOM, record_size


class Layout(NamedTuple):
    """One camera's chunk-aligned placement (T tiles, M sorted slots)."""
    dest: jnp.ndarray         # (M,) int32 record slot of each sorted slot; padded_size if unused
    tile_first: jnp.ndarray   # (T,) int32 first record slot of each tile
    tile_count: jnp.ndarray   # (T,) int32 intersections of each tile


def padded_size(capacity: int, n_tiles: int, chunk: int) -> int:
    """Record slots needed: every tile may waste chunk-1 slots; +1 chunk of slack."""
    return (-(-(capacity + n_tiles * (chunk - 1)) // chunk) + 1) * chunk


def chunk_layout(bins: Bins, n_tiles: int, chunk: int) -> Layout:
    capacity = bins.tile_ids.shape[0]
    counts = bins.tile_starts[1:] - bins.tile_starts[:-1]
    padded = (counts + chunk - 1) // chunk * chunk
    first = jnp.cumsum(padded) - padded
    valid = bins.tile_ids < n_tiles
    tile = jnp.minimum(bins.tile_ids, n_tiles - 1)
    rank = jnp.arange(capacity, dtype=jnp.int32) - bins.tile_starts[tile]
    dest = jnp.where(valid, first[tile] + rank, padded_size(capacity, n_tiles, chunk))
    return Layout(dest=dest.astype(jnp.int32), tile_first=first.astype(jnp.int32),
                  tile_count=counts.astype(jnp.int32))


def pack_records(geom, features, bins: Bins, layout: Layout, n_tiles: int, chunk: int):
    """geom (N, GEOM), features (N, F) -> flat records (padded_size * R,) float32."""
    n_feat = features.shape[-1]
    r = record_size(n_feat)
    rows = jnp.concatenate([geom, features], axis=-1)
    rows = jnp.pad(rows, ((0, 1), (0, r - GEOM - n_feat)))   # row N = zeros (unused slots)
    sorted_rows = rows[jnp.minimum(bins.gaussian_ids, geom.shape[0])]
    size = padded_size(bins.tile_ids.shape[0], n_tiles, chunk)
    out = jnp.zeros((size, r), jnp.float32).at[layout.dest].set(sorted_rows, mode="drop")
    return out.reshape(-1)


def unpack_gradients(records, bins: Bins, layout: Layout, n_gaussians: int, n_feat: int,
                     n_tiles: int):
    """Flat gradient records -> (d geom (N, GEOM), d features (N, F)), deterministic."""
    r = record_size(n_feat)
    rows = records.reshape(-1, r)
    valid = bins.tile_ids < n_tiles
    per_slot = jnp.where(valid[:, None], rows[jnp.minimum(layout.dest, rows.shape[0] - 1)], 0.0)
    # Back to generation order, where each Gaussian's slots are one contiguous run.
    by_gaussian = jnp.zeros_like(per_slot).at[bins.sort_perm].set(per_slot)
    sums = segment_sum_runs(by_gaussian, bins.gaussian_ends)
    return sums[:, :GEOM], sums[:, GEOM:GEOM + n_feat]


def segment_sum_runs(values, ends):
    """values (M, R) in contiguous runs [ends[g-1], ends[g]) -> (N, R) run sums.

    A segmented inclusive scan (fixed tree of adds, restarting at run starts) read at
    each run's last slot: deterministic on every platform, unlike scatter-add.
    """
    m = values.shape[0]
    starts = jnp.concatenate([jnp.zeros(1, ends.dtype), ends[:-1]])
    flags = jnp.zeros(m, jnp.int32).at[starts].set(1, mode="drop")

    def combine(left, right):
        lf, lv = left
        rf, rv = right
        return lf | rf, jnp.where(rf[..., None] > 0, rv, lv + rv)

    _, scanned = jax.lax.associative_scan(combine, (flags, values))
    last = jnp.clip(ends - 1, 0, m - 1)
    nonempty = (ends > starts) & (ends <= m)
    return jnp.where(nonempty[:, None], scanned[last], 0.0)
