"""Chunked sorted-list compositor in plain JAX, built for XLA:CPU (backend "chunked").

On CPU the Pallas kernels only run in interpret mode and "tiles" pays for the fullest
tile's list on every tile; this compositor is what `backend="auto"` runs on CPU.

Design. Each 16 x 16 tile's depth-sorted list (binning.Bins) is split into its
(16 / SUB)^2 cells of SUB x SUB = P pixels (SUB = 8: four 64-pixel cells): an entry
goes to the cells its Gaussian's alpha >= 1/255 support box can reach (make_plan: the
quadratic form's minimum over dy gives sigma >= dx^2 / (2 cov_xx), so outside
|dx| <= sqrt(2 ln(255 o) cov_xx), widened by 1% + half a pixel, alpha < 1/255 and gsplat
skips the pair anyway), keeping the tile's order. Every pixel still blends exactly the
Gaussians gsplat blends there, in the same order, but small Gaussians stop paying for
the pixels of their tile they cannot reach: on the avatar frame 4.8M (entry, pixel)
pairs become 2.5M + padding. Each cell's list is placed in cell-aligned chunks of K =
CHUNK entries (padding slots point at a zero-opacity row). A fori_loop whose trip count
is the number of used blocks (so the buffer's unused capacity costs nothing) walks
blocks of G = BLOCK consecutive chunks front to back; each step evaluates the (K, G, P)
pixel terms of its block, entry-major. ("Tile" below means a cell.)
- Blending in log space, as render/tiles.py: log(1 - alpha); transmittance before each
  entry = exp(exclusive prefix sum). Inside a chunk the prefix is one (K, K)
  strictly-lower-triangular matmul; across the chunks of one tile it is a (G, G)
  "earlier chunk of the same tile" matmul over the block's chunk totals plus a carry (the
  tile still running at the previous block's end). gsplat's rules hold exactly:
  alpha = min(0.999, o exp(-sigma)), skip sigma < 0 or alpha < 1/255, pixel centres
  +0.5; since transmittance only falls along the list,
  "stop before the Gaussian that takes it to <= 1e-4 and skip every later one" is the
  mask "inclusive transmittance > 1e-4".
- Early exit: a block whose chunks all continue a tile whose every pixel has stopped is
  skipped (lax.cond). In the bench blob about half the chunks lie past saturation.
- Custom VJP that recomputes instead of storing: the forward keeps only each chunk's
  log transmittance before it (C, P) and the final transmittance. The backward walks
  the blocks back to front, recomputes alpha and transmittances, gets each entry's
  "behind" sum (colour cotangent . everything composited after it in its tile) from the
  transposed matmuls and a carry from the following block, and applies the
  closed-form derivatives of alpha -> sigma -> (means2d, conics, opacity); the pixel
  sums that the conic and mean gradients need are one matmul of d sigma with a constant
  (P, 6) basis (1, x, y, x^2, y^2, xy in cell-local pixels), expanded around each
  mean, instead of five reductions (forward+backward 102 -> 87 ms CPU time). Per-entry
  gradients reach Gaussians by a scatter-add per block (sequential on CPU, so runs
  are bit-identical; on a GPU it would be atomics, but "auto" never picks it there).
Cameras go one after another (lax.map in rasterize): vmap would run every camera for
the longest camera's trip count.

Alternatives measured (bench blob 5,000 Gaussians, 256 x 256, 51,639 intersections,
compositing only, this 2-core CPU under other jobs' load, ms forward / forward+backward):
- all chunks at once, jnp.cumsum over the chunk, autodiff: 261 / 795 (1.2 GB of
  temporaries);
- blocked loop + this custom VJP, cumsum over K = 32: 162 / 374. XLA:CPU's cumsum is the
  cost: a 32-long cumsum over every pair took 195 ms where the whole alpha evaluation
  took 32 ms;
- an unrolled multiplicative walk over the chunk's K entries (the reference's exact
  products): forward ~30 (CPU time), but XLA fuses the running product into each of its
  consumers (K^2 / 2 steps) unless an optimization_barrier splits it, and then the K tiny
  ops per block cost launch overhead: forward+backward 140 (CPU time);
- the triangular matmul, chunk-major (G, K, 256) blocks: 31 / 59; entry-major (chosen,
  a plain matmul with no transposes): 20 / 56;
- K x G sweep (entry-major): 16 x 16 20 / 56 (chosen); 8 x 32 30 / 55; 8 x 64 33 / 65;
  16 x 8 25 / 68; 16 x 32 26 / 64; 32 x 8 38 / 77; 32 x 16 46 / 88;
- across-chunk prefix by a segmented associative_scan instead of the (G, G) matmul: the
  same within noise (kept the matmul: fewer ops, no flags in the plan);
- not pursued: splitting the list into two independent loops to use both cores; a toy
  test showed XLA:CPU already spreads one loop body's elementwise work over both cores
  (CPU time twice the wall time) and runs two independent loops no faster.

Issue 21 follow-up (2026-12-07; same-run A/B, min of 28 calls; compositor alone unless
"full" = rasterize with projection and binning; load average 5-8 on the 2 cores, so
only rows of one run compare). Profile of the avatar frame's full forward+backward
before it (61-64 ms): compositor 47 (forward 21), binning + sort of the 32k-slot buffer
6-10, projection forward+backward 1.8, layout 0.1; per-block loop overhead was not the
cost (G = 8 / 16 / 32 within noise): the per-pair passes were.
- binning: one int32 key (tile * N + depth rank) sorted alone instead of the stable
  two-key sort of four arrays (kernels/rasterize/binning.py): 10-17 -> 2-3 ms (avatar),
  16-34 -> 4 ms (blob); bins bit-identical;
- log(1 - alpha) instead of log1p (XLA:CPU's log1p ~1.7x a log): compositor avatar
  50 -> 45, blob 96 -> 81 (median of 3, noisy);
- per-pair passes made leaner, kept together: pixel centres = cell origin + constant
  offsets (XLA was redoing integer div/rem per pair in every alpha fusion: -5-7% alone);
  accumulation and the backward's feature products as batched matmuls on leading-axis
  swaps, feature-major (G, F, P) (the pixel-major einsums made XLA transpose every
  weight); alpha (0 where unused) the only per-pair screen term (hit = alpha > 0 & ...,
  d sigma = -d alpha alpha below the clamp, d opacity = -s0 / o from the basis matmul):
  avatar 40.8 -> 31.9, blob 73.8 -> 60.5;
- cells: SUB = 16 / 8 / 4, G = 16: avatar 35.1 / 22.2 / 55 (G = 64 for 8: 22.6), blob
  63.0 / 60.9 / 162 (G = 64 for 8: 74.5: a 64-chunk block spans ~20 cells and rarely lies
  wholly past saturation, so the early exit stops skipping); full forward+backward
  avatar 38.1 -> 32.8, blob 82.8 -> 70.8. SUB = 4 loses to 16 x more cells, more padding
  and a 16-column plan. The plan at SUB = 8 costs ~2 ms (avatar) / ~4 ms (blob) against
  0.3-0.5 at SUB = 16 (a jnp.cumsum over the (M, 4) slot masks alone was 3.7 ms: replaced
  by a blocked triangular-matmul count; per-Gaussian boxes materialised);
- per-cell images and per-Gaussian gradients summed inside the loops (scatter-adds of
  one block's rows) instead of capacity-sized per-chunk / per-slot buffers + segment_sum
  afterwards: same time within noise (full forward+backward CPU time avatar 33.7 / 33.6,
  blob 74.5 / 76.2), kept for the memory (the cell plan has 4x the slots);
- not pursued: storing per-pair alpha for the backward (saves one exp per pair but
  ~4x the compositor's memory, 38 MB avatar / 71 MB blob at 256 x 256); transmittance
  as in-chunk products (a log-depth Hillis-Steele scan still needs its own passes: ~the
  log + exp it would replace); a backward over only the chunks the forward left
  unsaturated (helps the blob only).
BENCHMARKS.md ("CPU compositor") has the end-to-end numbers against pallas-interpret.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.kernels.rasterize.binning import TILE_SIZE as TILE, Bins, tile_grid
from flashtalker_jax.kernels.rasterize.reference import (ALPHA_THRESHOLD, MAX_ALPHA,
                                                         MIN_TRANSMITTANCE)

CHUNK = 16   # K: entries of one tile's list blended together (a tile-aligned chunk)
BLOCK = 16   # G: chunks per loop step
GEOM = 6     # mean_x, mean_y, conic_a, conic_b, conic_c, opacity
LOG_MIN_T = float(jnp.log(jnp.float32(MIN_TRANSMITTANCE)))
SUB = 8      # cell side: each tile's list is split into (16 / SUB)^2 cells of SUB x SUB pixels
HIGHEST = jax.lax.Precision.HIGHEST


class Plan(NamedTuple):
    """One camera's chunk placement (S record slots = C chunks x K)."""
    gid: jnp.ndarray         # (S,) int32 Gaussian of each slot; N for padding
    chunk_tile: jnp.ndarray  # (C,) int32 tile of each chunk; T for empty chunks
    n_blocks: jnp.ndarray    # () int32 loop steps holding used chunks


def make_plan(bins: Bins, means2d, conics, opacities, tiles_x: int, n_tiles: int,
              chunk: int, block: int, sub: int) -> Plan:
    """Cell-aligned chunks of the sorted list, padded to whole blocks (static sizes).

    Cells: each 16 x 16 tile split into (16 / sub)^2 cells of sub x sub pixels, cell id
    = tile * Q + (row-major cell in the tile). A tile entry goes to the cells its
    Gaussian's alpha >= 1/255 support can reach, in the tile's (depth) order, so a
    cell's list is its tile's list minus entries that cannot touch its pixels: every
    pixel still sees every Gaussian gsplat would blend there, in the same order."""
    n_gaussians = means2d.shape[0]
    capacity = bins.tile_ids.shape[0]
    per_side = TILE // sub
    q_cells = per_side * per_side
    n_cells = n_tiles * q_cells
    valid = bins.tile_ids < n_tiles
    tile = jnp.minimum(bins.tile_ids, n_tiles - 1)
    g = jnp.minimum(bins.gaussian_ids, n_gaussians - 1)
    if sub == TILE:
        mask = valid[:, None]
    else:
        # Support box: sigma >= dx^2 / (2 cov_xx) (the quadratic form's minimum over dy),
        # so alpha = o exp(-sigma) < 1/255 wherever |dx| > sqrt(2 ln(255 o) cov_xx); cov
        # = conic^-1. Widened by 1% + half a pixel against rounding; degenerate conics
        # keep every cell.
        a, b, c = (jax.lax.stop_gradient(conics[:, i]) for i in range(3))
        o = jax.lax.stop_gradient(opacities)
        det = a * c - b * b
        ok = (det > 0) & (a > 0) & (c > 0)
        level = 2.0 * jnp.log(jnp.maximum(o / ALPHA_THRESHOLD, 1.0))
        safe = jnp.where(ok, det, 1.0)
        rx = jnp.where(ok, jnp.sqrt(level * c / safe) * 1.01 + 0.5, jnp.inf)
        ry = jnp.where(ok, jnp.sqrt(level * a / safe) * 1.01 + 0.5, jnp.inf)
        # Materialised per Gaussian: XLA would otherwise redo the log/sqrt for every
        # (slot, cell) inside the fusions that gather them (plan 7 -> ~2 ms on the blob).
        rx, ry = jax.lax.optimization_barrier((rx, ry))
        m = jax.lax.stop_gradient(means2d)
        mx = m[g, 0] - ((tile % tiles_x) * TILE).astype(jnp.float32)
        my = m[g, 1] - ((tile // tiles_x) * TILE).astype(jnp.float32)
        lo = np.arange(per_side, dtype=np.float32) * sub + 0.5      # first pixel centre
        hi = lo + (sub - 1)                                         # last pixel centre
        in_x = ((lo <= (mx + rx[g])[:, None]) & (hi >= (mx - rx[g])[:, None])) | jnp.isnan(mx)[:, None]
        in_y = ((lo <= (my + ry[g])[:, None]) & (hi >= (my - ry[g])[:, None])) | jnp.isnan(my)[:, None]
        mask = (in_y[:, :, None] & in_x[:, None, :]).reshape(capacity, q_cells) & valid[:, None]
    # Barriers: without them XLA fuses the mask and the running count's pieces into the
    # slot-sized consumers and recomputes them per element (plan ~3x slower).
    mask = jax.lax.optimization_barrier(mask.astype(jnp.int32))    # (M, Q)
    # Rank of each entry in its cell: slots are sorted by tile, so an exclusive running
    # count minus its value at the tile's first slot.
    before = _exclusive_count(mask)
    rank = before - before[jnp.minimum(bins.tile_starts[tile], capacity - 1)]
    counts = jnp.zeros((n_tiles + 1, q_cells), jnp.int32).at[bins.tile_ids].add(mask)
    counts = counts[:n_tiles].reshape(-1)                            # (n_cells,)
    padded = (counts + chunk - 1) // chunk * chunk
    first = jnp.cumsum(padded) - padded
    cell = tile[:, None] * q_cells + jnp.arange(q_cells)             # (M, Q)
    n_chunks = -(-(capacity * q_cells + n_cells * (chunk - 1)) // (chunk * block)) * block
    size = n_chunks * chunk
    base = jnp.pad(first.reshape(n_tiles, q_cells), ((0, 1), (0, 0)))[bins.tile_ids]
    rank, base = jax.lax.optimization_barrier((rank, base))
    dest = jnp.where(mask > 0, base + rank, size).reshape(-1)
    gid = jnp.full(size, n_gaussians, jnp.int32).at[dest].set(
        jnp.broadcast_to(jnp.minimum(bins.gaussian_ids, n_gaussians)[:, None], cell.shape).reshape(-1),
        mode="drop")
    # Cell of each chunk from the cells' chunk ranges (no slot-sized scatter).
    chunk_end = jnp.cumsum(padded // chunk)
    chunk_cell = jnp.searchsorted(chunk_end, jnp.arange(n_chunks, dtype=jnp.int32),
                                  side="right").astype(jnp.int32)      # n_cells past the end
    used = chunk_end[-1]
    return Plan(gid=gid, chunk_tile=chunk_cell, n_blocks=(-(-used // block)).astype(jnp.int32))


def _exclusive_count(mask, width: int = 16):
    """Exclusive running sums down axis 0 of an int (M, Q) 0/1 array: within blocks of
    `width` rows a strict-lower-triangular matmul (exact in float32 below 2^24), then a
    cumsum over the M / width block totals. XLA:CPU's cumsum over all M rows cost ~3.7 ms
    at M = 262k; this costs a fraction."""
    m, q = mask.shape
    rows = -(-m // width) * width
    x = jnp.pad(mask.astype(jnp.float32), ((0, rows - m), (0, 0))).reshape(-1, width, q)
    within = jnp.einsum("jk,bkq->bjq", _strict_lower(width), x, precision=HIGHEST)
    totals = jnp.sum(x, axis=1)
    offsets = jnp.cumsum(totals, axis=0) - totals
    return (within + offsets[:, None, :]).reshape(rows, q)[:m].astype(jnp.int32)


def _cell_origin(cells, tiles_x: int, n_cells: int, sub: int):
    """Top-left pixel (x, y) float32 of each cell id (ids >= n_cells: the last cell)."""
    per_side = TILE // sub
    c = jnp.minimum(cells, n_cells - 1)
    t, q = c // (per_side * per_side), c % (per_side * per_side)
    ox = (t % tiles_x) * TILE + (q % per_side) * sub
    oy = (t // tiles_x) * TILE + (q // per_side) * sub
    return ox.astype(jnp.float32), oy.astype(jnp.float32)


def _local_centres(sub: int):
    """Cell-local pixel centres (x, y), each (sub^2,) float32 constants."""
    p = np.arange(sub * sub)
    return (p % sub + 0.5).astype(np.float32), (p // sub + 0.5).astype(np.float32)


def _earlier_in_tile(tiles):
    """tiles (G,) of a block's chunks -> (G, G) [c, c'] = 1 where chunk c' precedes chunk c
    in the same tile: segmented exclusive prefix sums over the block as one matmul (a
    tile's chunks are contiguous)."""
    order = jnp.arange(tiles.shape[0])
    same = tiles[:, None] == tiles[None, :]
    return (same & (order[None, :] < order[:, None])).astype(jnp.float32)


def _alpha(geom, ids, tiles, tiles_x, n_tiles, sub):
    """Screen terms of one block: ids (G*K,) chunk-major, tiles (G,) -> (g (K, G, 6),
    alpha (K, G, 256)), entry-major (prefix sums over a chunk are one plain matmul).
    alpha is 0 where gsplat skips the pair (sigma < 0 or alpha < 1/255), so "used" is
    alpha > 0 and, below MAX_ALPHA, alpha is the unclamped o exp(-sigma): the backward
    needs nothing else per pair (no gauss/raw/use arrays for XLA to keep or recompute)."""
    g = geom[ids].reshape(tiles.shape[0], -1, GEOM).transpose(1, 0, 2)  # (K, G, 6)
    # Pixel centres = tile origin (per chunk) + constant tile-local offsets: the same
    # float values as reference.tile_pixel_centres, but XLA does not redo its integer
    # divisions inside every per-pair fusion (forward+backward -5-7%).
    ox, oy = _cell_origin(tiles, tiles_x, n_tiles, sub)
    lx, ly = _local_centres(sub)
    dx = g[..., 0:1] - (ox[None, :, None] + lx)
    dy = g[..., 1:2] - (oy[None, :, None] + ly)
    sigma = 0.5 * (g[..., 2:3] * dx * dx + g[..., 4:5] * dy * dy) + g[..., 3:4] * dx * dy
    alpha = jnp.minimum(MAX_ALPHA, g[..., 5:6] * jnp.exp(-sigma))
    return g, jnp.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, 0.0)


def _log_keep(alpha):
    """log(1 - alpha): jnp.log, not log1p (XLA:CPU's log1p costs ~1.7x a log; with
    alpha >= 1/255 or exactly 0 the rounding of 1 - alpha is ~1e-7 absolute per entry,
    the same order as the reference's own running product)."""
    return jnp.log(1.0 - alpha)


def _strict_lower(chunk: int):
    """(K, K) [j, k] = 1 where k < j: exclusive prefix sums over a chunk as a matmul."""
    return jnp.tril(jnp.ones((chunk, chunk), jnp.float32), -1)


def _dot(a, b):
    """float32 matmul (full precision also where a platform defaults to bf16/tf32)."""
    return jnp.dot(a, b, precision=HIGHEST)


def _matmul_entries(matrix, x):
    """matrix (K, K) applied along the entry axis of x (K, G, P)."""
    return _dot(matrix, x.reshape(x.shape[0], -1)).reshape(x.shape)


def _forward(static, geom, features, plan):
    tiles_x, n_tiles, chunk, block, sub = static
    n_pix = sub * sub
    n_chunks = plan.chunk_tile.shape[0]
    n_feat = features.shape[-1]
    strict_lower = _strict_lower(chunk)

    def compute(args):
        tiles, ids, run_tile, run_log = args
        _, alpha = _alpha(geom, ids, tiles, tiles_x, n_tiles, sub)
        log_keep = _log_keep(alpha)                                         # (K, G, 256)
        totals = jnp.sum(log_keep, axis=0)                                  # (G, 256)
        log_before = (_dot(_earlier_in_tile(tiles), totals)
                      + jnp.where((tiles == run_tile)[:, None], run_log[None], 0.0))
        log_t = log_before[None] + _matmul_entries(strict_lower, log_keep)
        hit = (alpha > 0) & (log_t + log_keep > LOG_MIN_T)
        weight = jnp.where(hit, alpha * jnp.exp(log_t), 0.0)
        f = features[ids].reshape(block, chunk, n_feat)
        # Feature-major (G, F, 256) = (G, F, K) @ (G, K, 256): a batched matmul whose
        # operands only swap leading axes (256-float rows stay contiguous), where the
        # pixel-major einsum made XLA transpose every weight to (G, 256, K).
        acc = jnp.matmul(f.transpose(0, 2, 1), weight.transpose(1, 0, 2), precision=HIGHEST)
        log_kept = jnp.sum(jnp.where(hit, log_keep, 0.0), axis=0)
        return acc, log_kept, log_before, log_before[-1] + totals[-1]

    def skip(args):
        tiles, ids, run_tile, run_log = args
        done = jnp.full((block, n_pix), LOG_MIN_T - 1.0)
        return (jnp.zeros((block, n_feat, n_pix), jnp.float32),
                jnp.zeros((block, n_pix), jnp.float32), done, run_log)

    def body(i, carry):
        acc_all, log_t_all, before_all, run_tile, run_log = carry
        c0 = i * block
        tiles = jax.lax.dynamic_slice_in_dim(plan.chunk_tile, c0, block)
        ids = jax.lax.dynamic_slice_in_dim(plan.gid, c0 * chunk, block * chunk)
        # Early exit: every chunk continues a tile whose pixels have all stopped.
        finished = jnp.all(tiles == run_tile) & jnp.all(run_log <= LOG_MIN_T)
        acc, log_t, before, run_log = jax.lax.cond(
            finished, skip, compute, (tiles, ids, run_tile, run_log))
        # Summed into per-cell images inside the loop (a 16-row scatter-add per step),
        # not kept per chunk: the chunk buffers are sized by the static capacity (4x
        # the slots with cells), and zero-filling them cost more than the scatters.
        acc_all = acc_all.at[tiles].add(acc, indices_are_sorted=True)
        log_t_all = log_t_all.at[tiles].add(log_t, indices_are_sorted=True)
        before_all = jax.lax.dynamic_update_slice_in_dim(before_all, before, c0, 0)
        return acc_all, log_t_all, before_all, tiles[-1], run_log

    init = (jnp.zeros((n_tiles + 1, n_feat, n_pix), jnp.float32),
            jnp.zeros((n_tiles + 1, n_pix), jnp.float32),
            jnp.full((n_chunks, n_pix), LOG_MIN_T - 1.0, jnp.float32),
            jnp.int32(-1), jnp.zeros(n_pix, jnp.float32))
    acc, log_t, before, _, _ = jax.lax.fori_loop(0, plan.n_blocks, body, init)
    acc = acc.transpose(0, 2, 1)                                       # (T + 1, P, F)
    return (acc[:n_tiles], jnp.exp(log_t[:n_tiles])), before


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _composite(static, geom, features, plan):
    return _forward(static, geom, features, plan)[0]


def _fwd(static, geom, features, plan):
    out, before = _forward(static, geom, features, plan)
    return out, (geom, features, plan, before, out[1])


def _bwd(static, residuals, cotangents):
    tiles_x, n_tiles, chunk, block, sub = static
    n_pix = sub * sub
    geom, features, plan, before_all, trans = residuals
    d_acc, d_trans = cotangents
    n_feat = features.shape[-1]
    d_acc = jnp.pad(d_acc, ((0, 1), (0, 0), (0, 0)))                   # tile T: empty chunks
    d_acc_t = d_acc.transpose(0, 2, 1)                                 # (T + 1, F, 256)
    d_final = jnp.pad(d_trans * trans, ((0, 1), (0, 0)))              # d trans * T_final
    strict_lower = _strict_lower(chunk)
    px, py = _local_centres(sub)
    basis = np.stack([np.ones_like(px), px, py, px * px, py * py, px * py], -1)  # (P, 6)

    def full(args):
        tiles, ids, log_before, run_tile, run_q = args
        g, alpha = _alpha(geom, ids, tiles, tiles_x, n_tiles, sub)
        # Per-entry transmittance in log space: exclusive prefix sums over the chunk as
        # one small matmul (an unrolled walk costs K tiny XLA ops per block).
        log_keep = _log_keep(alpha)                                      # (K, G, 256)
        log_t = log_before[None] + _matmul_entries(strict_lower, log_keep)
        hit = (alpha > 0) & (log_t + log_keep > LOG_MIN_T)
        trans_k = jnp.exp(log_t)
        weight = jnp.where(hit, alpha * trans_k, 0.0)
        ga = d_acc[tiles]                                                # (G, 256, F)
        # colour cotangent . features per pair: (G, K, F) @ (G, F, 256), batched matmuls
        # on leading-axis swaps only (as the forward's accumulation).
        f = features[ids].reshape(block, chunk, n_feat)                  # (G, K, F)
        gaf = jnp.matmul(f, d_acc_t[tiles], precision=HIGHEST).transpose(1, 0, 2)
        q = weight * gaf                                                 # (K, G, 256)
        later = _matmul_entries(strict_lower.T, q)                       # sum over k > j
        totals = jnp.sum(q, axis=0)
        after = (_dot(_earlier_in_tile(tiles).T, totals)                 # later chunks
                 + jnp.where((tiles == run_tile)[:, None], run_q[None], 0.0))
        behind = later + (after + d_final[tiles])[None]
        d_alpha = jnp.where(hit, trans_k * gaf - behind / (1.0 - alpha), 0.0)
        # Used, unclamped pairs have raw = o exp(-sigma) = alpha; clamped ones pass no
        # gradient (d raw = d alpha there, so d sigma = -d raw * raw).
        d_sigma = jnp.where(alpha < MAX_ALPHA, -d_alpha * alpha, 0.0)
        # Pixel sums of d_sigma times 1, x, y, x^2, y^2, xy in tile-local coordinates (one
        # matmul with a constant basis), then expanded around each mean (dx = mean - x).
        m = _dot(d_sigma.reshape(-1, n_pix), basis).reshape(d_sigma.shape[:2] + (6,))
        s0, sx, sy, sxx, syy, sxy = (m[..., i] for i in range(6))
        ox, oy = _cell_origin(tiles, tiles_x, n_tiles, sub)
        mx, my = g[..., 0] - ox[None], g[..., 1] - oy[None]
        sdx, sdy = mx * s0 - sx, my * s0 - sy
        sdxx = mx * mx * s0 - 2.0 * mx * sx + sxx
        sdyy = my * my * s0 - 2.0 * my * sy + syy
        sdxy = mx * my * s0 - mx * sy - my * sx + sxy
        a_, b_, c_ = g[..., 2], g[..., 3], g[..., 4]
        d_geom = jnp.stack([a_ * sdx + b_ * sdy, c_ * sdy + b_ * sdx, 0.5 * sdxx, sdxy,
                            0.5 * sdyy,
                            # d opacity = sum d raw * exp(-sigma) = -s0 / o (binned
                            # Gaussians have o >= 1/255; the padding row has o = 0)
                            -s0 / jnp.where(g[..., 5] > 0, g[..., 5], 1.0)], -1)  # (K, G, 6)
        d_feat = jnp.matmul(weight.transpose(1, 0, 2), ga,
                            precision=HIGHEST).transpose(1, 0, 2)         # (K, G, F)
        rows = jnp.concatenate([d_geom, d_feat], -1).transpose(1, 0, 2).reshape(block * chunk, -1)
        return rows, after[0] + totals[0]

    def skip(args):
        tiles, ids, log_before, run_tile, run_q = args
        # No hits in the block: nothing behind changes (a tile's sum passes through).
        return (jnp.zeros((block * chunk, GEOM + n_feat), jnp.float32),
                jnp.where(tiles[0] == run_tile, run_q, 0.0))

    def body(j, carry):
        grads, run_tile, run_q = carry
        c0 = (plan.n_blocks - 1 - j) * block
        tiles = jax.lax.dynamic_slice_in_dim(plan.chunk_tile, c0, block)
        ids = jax.lax.dynamic_slice_in_dim(plan.gid, c0 * chunk, block * chunk)
        log_before = jax.lax.dynamic_slice_in_dim(before_all, c0, block)
        finished = jnp.all(log_before <= LOG_MIN_T)
        rows, run_q = jax.lax.cond(finished, skip, full,
                                   (tiles, ids, log_before, run_tile, run_q))
        # Straight into per-Gaussian sums (a sequential scatter-add on CPU: runs stay
        # bit-identical), not a capacity-sized per-slot buffer summed afterwards.
        grads = grads.at[ids].add(rows)
        return grads, tiles[0], run_q

    n = features.shape[0]
    init = (jnp.zeros((n, GEOM + n_feat), jnp.float32), jnp.int32(-1),
            jnp.zeros(n_pix, jnp.float32))
    per_gaussian, _, _ = jax.lax.fori_loop(0, plan.n_blocks, body, init)
    zeros = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, jax.dtypes.float0), plan)
    return per_gaussian[:, :GEOM], per_gaussian[:, GEOM:], zeros


_composite.defvjp(_fwd, _bwd)


def composite(means2d, conics, opacities, features, bins: Bins, width: int, height: int, *,
              chunk: int = CHUNK, block: int = BLOCK, sub: int = SUB):
    """One camera, same contract as reference.composite: means2d (N,2), conics (N,3),
    opacities (N,), features (N,F) -> (accumulated features (H,W,F), transmittance (H,W)).
    chunk: entries per chunk; block: chunks per loop step; sub: cell side (divides 16)."""
    if TILE % sub:
        raise ValueError(f"sub must divide {TILE}, got {sub}")
    tiles_x, tiles_y = tile_grid(width, height)
    n_tiles = tiles_x * tiles_y
    n_cells = n_tiles * (TILE // sub) ** 2
    plan = make_plan(bins, means2d, conics, opacities, tiles_x, n_tiles, chunk, block, sub)
    geom = jnp.concatenate([means2d, conics, opacities[:, None]], axis=-1)
    geom = jnp.pad(geom, ((0, 1), (0, 0)))                               # row N: opacity 0
    feats = jnp.pad(features, ((0, 1), (0, 0)))
    acc, trans = _composite((tiles_x, n_cells, chunk, block, sub), geom, feats, plan)
    return (_cells_to_image(acc, tiles_x, tiles_y, sub, width, height),
            _cells_to_image(trans[..., None], tiles_x, tiles_y, sub, width, height)[..., 0])


def _cells_to_image(cells, tiles_x: int, tiles_y: int, sub: int, width: int, height: int):
    """(n_cells, sub^2, F) cell-major pixels -> (height, width, F) image."""
    per_side = TILE // sub
    f = cells.shape[-1]
    img = cells.reshape(tiles_y, tiles_x, per_side, per_side, sub, sub, f)
    img = img.transpose(0, 2, 4, 1, 3, 5, 6)   # (ty, cell y, y, tx, cell x, x, F)
    return img.reshape(tiles_y * TILE, tiles_x * TILE, f)[:height, :width]
