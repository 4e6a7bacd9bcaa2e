"""`rasterize`: the one public entry of the Gaussian renderer.

Pipeline per camera: projection (plain JAX, differentiable w.r.t. Gaussians and the
viewmat) -> optional SH colours -> tile binning + depth sort (XLA, static buffer) ->
compositing by the chosen backend:
  "reference"  plain-JAX scan (kernels/rasterize/reference.py), gradients by autodiff;
  "pallas"     tile kernels with a custom VJP (kernels/rasterize/), interpret mode on CPU;
  "tiles"      vectorised plain-JAX compositor (render/tiles.py): every tile at once over
               its first `per_tile` entries, gradients by autodiff;
  "chunked"    plain-JAX compositor built for XLA:CPU (render/chunked.py): each tile's
               sorted list split into 8x8-pixel cells (entries only where their Gaussian
               can reach), in cell-aligned chunks of 16, log-space blending, early exit
               for finished cells, a custom VJP that recomputes instead of storing;
  "auto"       "chunked" on CPU, "pallas" on GPU/TPU (jax.default_backend()). On a 2-core
               CPU "chunked" measured 3.4-8x faster forward+backward than pallas in
               interpret mode (forward 0.85-1.7x), which measured 4-80x faster than the
               reference scan and 7-17x faster than "tiles" (BENCHMARKS.md, "CPU
               compositor").
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from flashtalker_jax.kernels.rasterize import binning, reference
from flashtalker_jax.kernels.rasterize.binning import tile_grid
from flashtalker_jax.kernels.rasterize.vjp import composite_pallas
from flashtalker_jax.render import chunked, tiles
from flashtalker_jax.render.camera import camera_position
from flashtalker_jax.render.projection import project
from flashtalker_jax.render.sh import num_sh_bases, sh_to_rgb

BACKENDS = ("auto", "reference", "pallas", "tiles", "chunked")
DEFAULT_PER_TILE = 256   # "tiles": first guess of the entries kept per 16x16 tile
DEFAULT_TILE_CHUNK = 64  # "tiles": tiles composited at once (bounds the backward's memory)
PER_TILE_STEP = 64       # "tiles": re-runs round the needed per_tile up to this


class RenderOutput(NamedTuple):
    """Rendered images; a leading (B,) axis when the cameras were batched.

    rgb (..., H, W, C) with the background composited; alpha (..., H, W) = 1 - final
    transmittance; depth (..., H, W) expected depth = sum(w z) / max(alpha, 1e-10)
    (gsplat's "ED"); n_intersections (...,) int32 tile intersections needed; overflow
    (...,) bool: intersection buffer too small, or (backend "tiles") a tile holds more
    than per_tile entries (never True from an eager call: it re-runs).
    Unpacks like a tuple (rgb, alpha, depth, ...) or by attribute.
    """
    rgb: jnp.ndarray
    alpha: jnp.ndarray
    depth: jnp.ndarray
    n_intersections: jnp.ndarray
    overflow: jnp.ndarray


class BufferOverflowError(RuntimeError):
    """The static tile-intersection buffer was too small inside a traced (jitted) call."""


def overflow_message(exc: BaseException) -> str | None:
    """The message of the BufferOverflowError a traced rasterize raised from its host
    callback, which reaches the caller as a JaxRuntimeError carrying that text; None when
    `exc` carries none (any other failure)."""
    marker = f"{BufferOverflowError.__name__}: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else None


def rasterize(means, quats, scales, opacities, colors, viewmat, K, width: int, height: int,
              *, sh_degree: int | None = None, background=None, backend: str = "auto",
              capacity: int | None = None, per_tile: int | None = None,
              tile_chunk: int | None = None, eps2d: float = 0.3, near_plane: float = 0.01,
              far_plane: float = 1e10) -> RenderOutput:
    """Render 3D Gaussians with gsplat's projection and compositing rules.

    Gaussians: means (N,3), quats (N,4) wxyz (normalised here), scales (N,3),
    opacities (N,), colors (N,C) or SH coefficients (N,K,3) with sh_degree in 0..3;
    each may carry a leading frame axis (B,...) to render B different scenes.
    Cameras: viewmat (4,4) or (B,4,4) world-to-camera (OpenCV axes), K (3,3) or (B,3,3)
    in pixels. background: (C,) or (B,C), composited as rgb + bg (1 - alpha).
    capacity: tile-intersection slots per camera. Eager calls start from it (default
    4 per Gaussian) and re-run with a larger buffer when it overflows; traced calls
    (inside jit/grad) raise BufferOverflowError from a host callback at run time,
    which JAX re-raises as jax.errors.JaxRuntimeError carrying the message with the
    size needed (use `required_capacity` to size the buffer beforehand).
    per_tile, tile_chunk (backend "tiles" only; the other backends ignore them, since
    they composite whole tile lists): entries composited per 16x16 tile (default
    DEFAULT_PER_TILE) and tiles composited at once (default DEFAULT_TILE_CHUNK). A tile
    holding more entries than per_tile is an overflow, handled like the buffer's: eager
    calls re-run with a larger per_tile, traced calls raise BufferOverflowError with the
    per_tile needed.
    Differentiable w.r.t. every Gaussian input, viewmat and background.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, value in (("per_tile", per_tile), ("tile_chunk", tile_chunk)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    args = _batch_inputs(means, quats, scales, opacities, colors, viewmat, K, background,
                         sh_degree)
    batched = jnp.ndim(viewmat) == 3
    n = args[0].shape[-2]
    cap = binning.default_capacity(n) if capacity is None else int(capacity)
    backend = _resolve(backend)
    sizes = dict(capacity=cap, per_tile=None, tile_chunk=None)
    if backend == "tiles":
        sizes.update(per_tile=int(per_tile or DEFAULT_PER_TILE),
                     tile_chunk=int(tile_chunk or DEFAULT_TILE_CHUNK))
    static = dict(width=int(width), height=int(height), sh_degree=sh_degree, backend=backend,
                  eps2d=eps2d, near_plane=near_plane, far_plane=far_plane)
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(args))
    if traced:
        out, longest = _render(*args, **sizes, **static)
        # Scalars, not the (B,) per-frame values: a host callback reads its arguments on
        # one device, so batch-sharded (B,) inputs were gathered by an "involuntary full
        # rematerialization" (XLA SPMD warning) on every data-parallel step.
        jax.debug.callback(functools.partial(_raise_on_overflow, capacity=cap,
                                             per_tile=sizes["per_tile"]),
                           jnp.max(out.n_intersections), jnp.max(longest), jnp.any(out.overflow))
    else:
        out, longest = _render_jit(*args, **sizes, **static)
        # At most two re-runs: a short buffer truncates the tile lists, so the per-tile
        # length is only known once the buffer fits.
        for _ in range(2):
            if not bool(jnp.any(out.overflow)):
                break
            sizes = _grown(sizes, int(jnp.max(out.n_intersections)), int(jnp.max(longest)))
            out, longest = _render_jit(*args, **sizes, **static)
    return out if batched else jax.tree_util.tree_map(lambda x: x[0], out)


def _grown(sizes: dict, needed: int, longest: int) -> dict:
    """Buffer sizes that fit `needed` intersections and `longest` entries in a tile."""
    grown = dict(sizes, capacity=max(sizes["capacity"], binning.next_power_of_two(needed)))
    if sizes["per_tile"] is not None:
        grown["per_tile"] = max(sizes["per_tile"], -(-longest // PER_TILE_STEP) * PER_TILE_STEP)
    return grown


def required_capacity(means, quats, scales, opacities, viewmat, K, width: int, height: int,
                      **projection_options) -> int:
    """Intersection slots the largest camera needs (eager; for sizing jitted callers)."""
    return int(jnp.max(intersection_counts(means, quats, scales, opacities, viewmat, K,
                                           width, height, **projection_options)))


def required_per_tile(means, quats, scales, opacities, viewmat, K, width: int, height: int,
                      *, eps2d: float = 0.3, near_plane: float = 0.01,
                      far_plane: float = 1e10) -> int:
    """Entries of the fullest tile over the cameras (eager): the per_tile backend "tiles"
    needs to composite every intersection (for sizing jitted callers)."""
    options = dict(eps2d=eps2d, near_plane=near_plane, far_plane=far_plane)
    counts = intersection_counts(means, quats, scales, opacities, viewmat, K, width, height,
                                 **options)
    viewmat = viewmat if jnp.ndim(viewmat) == 3 else viewmat[None]
    batch = viewmat.shape[0]
    gauss = [_lead(x, batch, base) for x, base in
             ((means, 2), (quats, 2), (scales, 2), (opacities, 1))]
    capacity = binning.next_power_of_two(max(1024, int(jnp.max(counts))))
    return int(jnp.max(_longest(*gauss, viewmat, _lead(K, batch, 2), width=int(width),
                                height=int(height), capacity=capacity, **options)))


def intersection_counts(means, quats, scales, opacities, viewmat, K, width: int,
                        height: int, *, eps2d: float = 0.3, near_plane: float = 0.01,
                        far_plane: float = 1e10) -> jnp.ndarray:
    """Tile intersections (B,) int32 of each camera (same batching rules as rasterize)."""
    viewmat = viewmat if jnp.ndim(viewmat) == 3 else viewmat[None]
    batch = viewmat.shape[0]
    gauss = [_lead(x, batch, base) for x, base in
             ((means, 2), (quats, 2), (scales, 2), (opacities, 1))]
    return _counts(*gauss, viewmat, _lead(K, batch, 2), width=int(width), height=int(height),
                   eps2d=eps2d, near_plane=near_plane, far_plane=far_plane)


@functools.partial(jax.jit, static_argnames=("width", "height", "eps2d", "near_plane",
                                             "far_plane"))
def _counts(means, quats, scales, opacities, viewmat, K, *, width, height, eps2d,
            near_plane, far_plane):
    tiles_x, tiles_y = tile_grid(width, height)

    def one(m, q, s, o, v, k):
        p = project(m, q, s, o, v, k, width, height, eps2d=eps2d, near_plane=near_plane,
                    far_plane=far_plane)
        return binning.intersection_count(p.means2d, p.radii, tiles_x, tiles_y)

    return jax.vmap(one)(means, quats, scales, opacities, viewmat, K)


@functools.partial(jax.jit, static_argnames=("width", "height", "capacity", "eps2d",
                                             "near_plane", "far_plane"))
def _longest(means, quats, scales, opacities, viewmat, K, *, width, height, capacity, eps2d,
             near_plane, far_plane):
    tiles_x, tiles_y = tile_grid(width, height)

    def one(m, q, s, o, v, k):
        p = project(m, q, s, o, v, k, width, height, eps2d=eps2d, near_plane=near_plane,
                    far_plane=far_plane)
        return tiles.longest_tile(binning.bin_gaussians(p.means2d, p.radii, p.depths, tiles_x,
                                                        tiles_y, capacity))

    return jax.vmap(one)(means, quats, scales, opacities, viewmat, K)


def _resolve(backend: str) -> str:
    """"auto": the compiled plain-JAX compositor on CPU (Pallas would run interpreted
    there), the Pallas kernels on GPU/TPU."""
    if backend != "auto":
        return backend
    return "chunked" if jax.default_backend() == "cpu" else "pallas"


def _raise_on_overflow(n_intersections, longest, overflow, *, capacity, per_tile):
    if not bool(jnp.any(overflow)):
        return
    needed = int(jnp.max(n_intersections))
    if needed > capacity:
        raise BufferOverflowError(
            f"rasterize: {needed} tile intersections do not fit the buffer of {capacity} "
            f"slots; pass capacity>= that (see required_capacity) or call rasterize "
            f"outside jit, where it re-runs with a larger buffer")
    raise BufferOverflowError(
        f"rasterize (backend 'tiles'): a tile holds {int(jnp.max(longest))} entries, more "
        f"than per_tile={per_tile}; pass per_tile>= that or call rasterize outside jit, "
        f"where it re-runs with a larger per_tile")


def _lead(x, batch: int, base_ndim: int):
    """Give x a leading (B,) axis (broadcast when it has none)."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == base_ndim:
        return jnp.broadcast_to(x, (batch,) + x.shape)
    if x.ndim != base_ndim + 1 or x.shape[0] != batch:
        raise ValueError(f"expected shape (..., {x.shape[-base_ndim:]}) with leading "
                         f"batch {batch}, got {x.shape}")
    return x


def _batch_inputs(means, quats, scales, opacities, colors, viewmat, K, background, sh_degree):
    viewmat = jnp.asarray(viewmat, jnp.float32)
    if viewmat.ndim == 2:
        viewmat = viewmat[None]
    batch = viewmat.shape[0]
    chex.assert_shape(viewmat, (batch, 4, 4))
    color_ndim = 2 if sh_degree is None else 3
    out = [_lead(means, batch, 2), _lead(quats, batch, 2), _lead(scales, batch, 2),
           _lead(opacities, batch, 1), _lead(colors, batch, color_ndim), viewmat,
           _lead(K, batch, 2)]
    n = out[0].shape[1]
    chex.assert_shape(out[0], (batch, n, 3))
    chex.assert_shape(out[1], (batch, n, 4))
    chex.assert_shape(out[2], (batch, n, 3))
    chex.assert_shape(out[3], (batch, n))
    chex.assert_shape(out[6], (batch, 3, 3))
    if sh_degree is not None:
        chex.assert_shape(out[4], (batch, n, None, 3))
        if out[4].shape[2] < num_sh_bases(sh_degree):
            raise ValueError(f"sh_degree {sh_degree} needs {num_sh_bases(sh_degree)} "
                             f"coefficients per Gaussian, got {out[4].shape[2]}")
    else:
        chex.assert_shape(out[4], (batch, n, None))
    n_channels = out[4].shape[-1]
    bg = None if background is None else _lead(background, batch, 1)
    if bg is not None:
        chex.assert_shape(bg, (batch, n_channels))
    return (*out, bg)


def _render(means, quats, scales, opacities, colors, viewmat, K, background, *, width,
            height, sh_degree, backend, capacity, per_tile, tile_chunk, eps2d, near_plane,
            far_plane):
    """(RenderOutput, longest tile list (B,) int32) of a batch of cameras."""
    tiles_x, tiles_y = tile_grid(width, height)

    def prepare(m, q, s, o, c, v, k):
        p = project(m, q, s, o, v, k, width, height, eps2d=eps2d, near_plane=near_plane,
                    far_plane=far_plane)
        if sh_degree is not None:
            c = sh_to_rgb(c, m - camera_position(v), sh_degree)
        features = jnp.concatenate([c, p.depths[:, None]], axis=-1)
        bins = binning.bin_gaussians(p.means2d, p.radii, p.depths, tiles_x, tiles_y, capacity)
        return p.means2d, p.conics, features, bins

    means2d, conics, features, bins = jax.vmap(prepare)(
        means, quats, scales, opacities, colors, viewmat, K)
    longest = jax.vmap(tiles.longest_tile)(bins)
    overflow = bins.overflow
    if backend == "reference":
        acc, trans = jax.vmap(functools.partial(reference.composite, width=width,
                                                height=height))(
            means2d, conics, opacities, features, bins)
    elif backend == "tiles":
        acc, trans = jax.vmap(functools.partial(tiles.composite, width=width, height=height,
                                                per_tile=per_tile, tile_chunk=tile_chunk))(
            means2d, conics, opacities, features, bins)
        overflow = overflow | (longest > per_tile)
    elif backend == "chunked":
        # Cameras one after another: its loops have per-camera trip counts (early exit),
        # which vmap would turn into the longest camera's.
        acc, trans = jax.lax.map(
            lambda a: chunked.composite(*a, width=width, height=height),
            (means2d, conics, opacities, features, bins))
    else:
        acc, trans = composite_pallas(means2d, conics, opacities, features, bins,
                                      width=width, height=height)
    alpha = 1.0 - trans
    rgb = acc[..., :-1]
    if background is not None:
        rgb = rgb + background[:, None, None, :] * trans[..., None]
    depth = acc[..., -1] / jnp.maximum(alpha, 1e-10)
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth,
                        n_intersections=bins.n_intersections, overflow=overflow), longest


_render_jit = jax.jit(_render, static_argnames=(
    "width", "height", "sh_degree", "backend", "capacity", "per_tile", "tile_chunk", "eps2d",
    "near_plane", "far_plane"))
