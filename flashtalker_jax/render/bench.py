"""Rasterizer benchmark: forward and forward+backward time, memory, traffic floor.

Scenes are random blobs of Gaussians (render/scenes.py) sized so that neighbouring
Gaussians overlap, seen by 1 or B orbiting cameras at width x height. Times are medians
of `runs` device-synced calls after a warm-up call (compile excluded). Memory is XLA's
buffer assignment for the jitted call (arguments + outputs + temporaries) and, where the
device reports it, the process's peak bytes in use. On a CUDA machine with torch and
gsplat importable, the same scenes also go through gsplat's CUDA
`rasterization(packed=False)`, with the max image difference to our pallas render.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.render import rasterize
from flashtalker_jax.render.rasterize import (PER_TILE_STEP, intersection_counts,
                                              required_per_tile)
from flashtalker_jax.kernels.rasterize.binning import next_power_of_two
from flashtalker_jax.render.scenes import intrinsics, orbit_cameras, random_scene

# Peak HBM bandwidth (bytes/s) by device kind, from the vendors' data sheets.
BANDWIDTH = {"NVIDIA H100 80GB HBM3": 3.35e12, "NVIDIA H100": 3.35e12,
             "NVIDIA H200": 4.8e12, "NVIDIA A100-SXM4-80GB": 2.0e12,
             "NVIDIA A100-SXM4-40GB": 1.56e12}
CHANNELS = 3


def bench_scene(n: int, batch: int, width: int, height: int, seed: int = 0):
    """A blob of n Gaussians 2.5 units in front of `batch` orbiting cameras."""
    extent = 0.5
    log_scale = math.log(1.5 * extent / n ** (1 / 3))
    scene = random_scene(jax.random.PRNGKey(seed), n, extent=extent, log_scale=log_scale)
    return scene, orbit_cameras(batch, arc=0.5), intrinsics(width, height, 1.0)


def traffic_floor(n: int, batch: int, n_isect: int, width: int, height: int) -> dict:
    """Minimum bytes a rasterizer must move (float32), see BENCHMARKS.md:
    forward: Gaussian parameters read once (3+4+3+1+C floats each), every tile
    intersection's screen record read once (2 mean + 3 conic + 1 opacity + C colour
    + 1 depth floats), images written (C + alpha + depth floats per pixel);
    backward adds: output cotangents read, forward images read again, records read
    again, parameter gradients written. n_isect: intersections summed over cameras."""
    f = 4
    params = n * (11 + CHANNELS) * f
    records = n_isect * (6 + CHANNELS + 1) * f
    images = batch * width * height * (CHANNELS + 2) * f
    fwd = params + records + images
    bwd = fwd + 2 * images + records + params
    return {"fwd_bytes": fwd, "fwd_bwd_bytes": bwd}


def _time(fn: Callable, runs: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _xla_bytes(compiled) -> int | None:
    try:
        mem = compiled.memory_analysis()
        return int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                   + mem.temp_size_in_bytes)
    except (AttributeError, NotImplementedError, TypeError):
        return None


def _peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def bench_jax(backend: str, n: int, batch: int, width: int, height: int, runs: int) -> dict:
    scene, cams, K = bench_scene(n, batch, width, height)
    counts = intersection_counts(scene.means, scene.quats, scene.scales, scene.opacities,
                                 cams, K, width, height)
    capacity = next_power_of_two(max(int(jnp.max(counts)), 1024))
    per_tile = None
    if backend == "tiles":
        longest = required_per_tile(scene.means, scene.quats, scene.scales, scene.opacities,
                                    cams, K, width, height)
        per_tile = -(-longest // PER_TILE_STEP) * PER_TILE_STEP

    def render(s, v):
        return rasterize(*s, v, K, width, height, backend=backend, capacity=capacity,
                         per_tile=per_tile).rgb

    def loss(s, v):
        return jnp.sum(render(s, v) * jnp.linspace(0.0, 1.0, CHANNELS))

    # Compiled ahead of time once: the same executables are timed and measured.
    fwd = jax.jit(render).lower(scene, cams).compile()
    fwd_bwd = jax.jit(jax.grad(loss)).lower(scene, cams).compile()
    row = {"backend": backend, "gaussians": n, "cameras": batch,
           "intersections": int(jnp.sum(counts)), "capacity": capacity, "per_tile": per_tile}
    row["fwd_ms"] = 1e3 * _time(lambda: fwd(scene, cams), runs)
    row["fwd_bwd_ms"] = 1e3 * _time(lambda: fwd_bwd(scene, cams), runs)
    row["xla_fwd_bwd_bytes"] = _xla_bytes(fwd_bwd)
    row["peak_bytes"] = _peak_bytes()
    row["image"] = np.asarray(fwd(scene, cams))
    return row


def gsplat_unavailable_reason() -> str | None:
    """Why gsplat's CUDA rows cannot run here, or None when they can."""
    if jax.default_backend() != "gpu":
        return f"no GPU (JAX backend {jax.default_backend()})"
    try:
        import torch
        import gsplat  # noqa: F401
    except ImportError as exc:
        return f"torch/gsplat not importable: {exc}"
    if not torch.cuda.is_available():
        return "torch has no CUDA device"
    return None


def bench_gsplat(n: int, batch: int, width: int, height: int, runs: int) -> dict:
    """gsplat CUDA rasterization(packed=False) on the same scene (CUDA machines only)."""
    import torch
    from gsplat import rasterization

    scene, cams, K = bench_scene(n, batch, width, height)
    dev = torch.device("cuda")

    def t(x):
        return torch.from_numpy(np.array(x, np.float32)).to(dev)

    means, quats, scales, opac, colors = (t(x) for x in scene)
    viewmats, Ks = t(cams), t(np.broadcast_to(np.asarray(K), (batch, 3, 3)))
    params = [p.requires_grad_(True) for p in (means, quats, scales, opac, colors)]
    weights = torch.linspace(0.0, 1.0, CHANNELS, device=dev)

    def forward():
        img, _, _ = rasterization(*params, viewmats, Ks, width, height, packed=False)
        return img

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def fwd_bwd():
        loss = (forward() * weights).sum()
        loss.backward()

    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        fwd_s = timed(forward)
        image = forward().cpu().numpy()
    return {"backend": "gsplat-cuda", "gaussians": n, "cameras": batch,
            "fwd_ms": 1e3 * fwd_s, "fwd_bwd_ms": 1e3 * timed(fwd_bwd),
            "peak_bytes": int(torch.cuda.max_memory_allocated()), "image": image}


def run(sizes, batches, backends, width: int, height: int, runs: int, progress=None,
        on_row=None):
    """All rows (dicts without images) plus notes; `progress` wraps the row iterator;
    on_row(rows) is called after each row (to save partial results of long runs)."""
    device = jax.devices()[0].device_kind
    bandwidth = BANDWIDTH.get(device)
    gsplat_reason = gsplat_unavailable_reason() if "gsplat" in backends else None
    jobs = [(b, n, c) for n in sizes for c in batches for b in backends]
    rows, notes, ours = [], [], {}
    for backend, n, batch in (progress(jobs) if progress else jobs):
        if backend == "gsplat" and gsplat_reason:
            continue
        try:
            row = (bench_gsplat(n, batch, width, height, runs) if backend == "gsplat"
                   else bench_jax(backend, n, batch, width, height, runs))
        except Exception as exc:  # noqa: BLE001 - an OOM or failure is a result here
            rows.append({"backend": backend, "gaussians": n, "cameras": batch,
                         "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        image = row.pop("image")
        if backend == "pallas":
            ours[(n, batch)] = (image, row)
        if backend == "gsplat" and (n, batch) in ours:
            row["max_abs_diff_vs_pallas"] = float(np.max(np.abs(ours[(n, batch)][0] - image)))
        if "intersections" in row:
            row.update(traffic_floor(n, batch, row["intersections"], width, height))
            if bandwidth:
                row["fwd_floor_ms"] = 1e3 * row["fwd_bytes"] / bandwidth
                row["fwd_bwd_floor_ms"] = 1e3 * row["fwd_bwd_bytes"] / bandwidth
        rows.append(row)
        if on_row:
            on_row(rows)
    if gsplat_reason:
        notes.append(f"gsplat CUDA rows skipped: {gsplat_reason}")
    if not bandwidth:
        notes.append(f"no memory bandwidth on record for {device!r}: floor times omitted")
    return rows, notes
