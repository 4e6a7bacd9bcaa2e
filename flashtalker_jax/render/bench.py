"""Rasterizer benchmark: forward and forward+backward time, memory, traffic floor.

Scenes are random blobs of Gaussians (render/scenes.py) sized so that neighbouring
Gaussians overlap, seen by 1 or B orbiting cameras at width x height. Times are medians
of `runs` device-synced calls after a warm-up call (compile excluded). Memory is XLA's
buffer assignment for the jitted call (arguments + outputs + temporaries) and, where the
device reports it, the process's peak bytes in use. On a CUDA machine with torch and
gsplat importable, the same scenes also go through gsplat's CUDA
`rasterization(packed=False)`, with the max image difference to our pallas render.
scene="avatar" replaces the blob by one frame of a freshly initialised FlashTalker avatar
(rgb + lip channel) on a small procedural identity (`avatar_scene`; `n` is then ignored).
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


def avatar_scene(width: int, height: int, seed: int = 0):
    """(Gaussians, viewmat (1,4,4), K (3,3)) of the first training frame of a fresh
    FlashTalker avatar (the CPU preset configs/adapt_flashtalker.py:cpu: 96^2 UV grid,
    5,508 Gaussians; no free capacity slots) on a procedural FLAME identity synthesised at
    64 x 64, its camera scaled to width (square). Colours carry the avatar's four channels
    (rgb + lip), as training renders them."""
    import tempfile
    from pathlib import Path

    from flax import nnx

    from flashtalker_jax.avatar.adapt import make_task
    from flashtalker_jax.avatar.renderer import AvatarRenderer, RenderSettings, render
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.identity import synthesize_identity
    from flashtalker_jax.flame.loader import load_flame_model
    from flashtalker_jax.flame.model import FlameParams
    from flashtalker_jax.flame.procedural import write_procedural_flame
    from flashtalker_jax.render.scenes import Scene

    if width != height:
        raise ValueError(f"the avatar scene is square, got {width} x {height}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flame_dir = write_procedural_flame(root / "head", seed=seed)
        cfg = load_config("data_synth", ["render.width=64", "render.height=64",
                                         "render.texture_size=256", "render.workers=1"])
        identity = root / "id0"
        synthesize_identity(identity, load_flame_model(flame_dir), flame_dir, seed, 0, 2.0, cfg,
                            show_progress=False)
        (identity / "flame").symlink_to(flame_dir, target_is_directory=True)
        config = load_config("adapt_flashtalker.py:cpu", [
            "task.avatar.capacity=0", f"task.resolution={width}", f"task.data={identity}"])
        task = make_task(config.task)
        model = task.make_model(nnx.Rngs(seed))
        batch = {k: jnp.asarray(v) for k, v in next(task.make_data(0, 1)).items()}
    params = FlameParams.from_track(batch, prefix="flame_", n_expr=model.flame.expr_dirs.shape[-1])
    settings = RenderSettings.from_config(config.task, width, backend="chunked")
    g = render(AvatarRenderer(model, settings), params, batch["viewmat"], batch["K"],
               batch.get("audio") if model.audio_dim else None).gaussians
    lip = jnp.broadcast_to(model.is_lip[...].astype(jnp.float32)[None, :, None],
                           g.colors.shape[:2] + (1,))
    scene = Scene(means=g.means[0], quats=g.quats[0], scales=g.scales[0],
                  opacities=g.opacities[0], colors=jnp.concatenate([g.colors, lip], -1)[0])
    return scene, batch["viewmat"][:1], batch["K"][0]


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


def alpha_pass_ms(n_isect: int, runs: int) -> float:
    """Median ms of one fused XLA pass that evaluates gsplat's alpha for every (tile
    intersection, pixel of its 16x16 tile) pair and sums it per intersection: the work no
    compositor can skip (sigma, exp, clamp, thresholds per pair), run as XLA runs it here.
    BENCHMARKS.md uses it as the CPU floor of a forward (forward+backward: 3x)."""
    geom = jax.random.uniform(jax.random.PRNGKey(0), (n_isect, 6), jnp.float32)
    p = jnp.arange(256)
    px, py = (p % 16 + 0.5).astype(jnp.float32), (p // 16 + 0.5).astype(jnp.float32)

    @jax.jit
    def alpha_sum(g):
        dx = 16.0 * g[:, 0:1] - px
        dy = 16.0 * g[:, 1:2] - py
        sigma = 0.5 * (g[:, 2:3] * dx * dx + g[:, 4:5] * dy * dy) + 0.1 * g[:, 3:4] * dx * dy
        alpha = jnp.minimum(0.999, g[:, 5:6] * jnp.exp(-sigma))
        return jnp.sum(jnp.where((sigma >= 0) & (alpha >= 1 / 255), alpha, 0.0), axis=1)

    return 1e3 * _time(lambda: alpha_sum(geom), runs)


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


def bench_jax(backend: str, n: int, batch: int, width: int, height: int, runs: int,
              scene=None) -> dict:
    """One row; scene: (Gaussians, cameras, K) to time instead of `bench_scene`'s blob."""
    scene, cams, K = scene if scene is not None else bench_scene(n, batch, width, height)
    n = int(scene.means.shape[0])
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
        return jnp.sum(render(s, v) * jnp.linspace(0.0, 1.0, scene.colors.shape[-1]))

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
        on_row=None, scene: str = "blob"):
    """All rows (dicts without images) plus notes; `progress` wraps the row iterator;
    on_row(rows) is called after each row (to save partial results of long runs).
    scene "avatar": one avatar frame (`avatar_scene`) instead of the blobs (sizes and
    batches are ignored: one row per backend)."""
    device = jax.devices()[0].device_kind
    bandwidth = BANDWIDTH.get(device)
    gsplat_reason = gsplat_unavailable_reason() if "gsplat" in backends else None
    jobs = [(b, n, c) for n in sizes for c in batches for b in backends]
    fixed = None
    if scene == "avatar":
        fixed = avatar_scene(width, height)
        jobs = [(b, int(fixed[0].means.shape[0]), 1) for b in backends]
    elif scene != "blob":
        raise ValueError(f"scene must be 'blob' or 'avatar', got {scene!r}")
    rows, notes, ours = [], [], {}
    for backend, n, batch in (progress(jobs) if progress else jobs):
        if backend == "gsplat" and gsplat_reason:
            continue
        try:
            row = (bench_gsplat(n, batch, width, height, runs) if backend == "gsplat"
                   else bench_jax(backend, n, batch, width, height, runs, scene=fixed))
        except Exception as exc:  # noqa: BLE001 - an OOM or failure is a result here
            rows.append({"backend": backend, "gaussians": n, "cameras": batch,
                         "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        image = row.pop("image")
        row["scene"] = scene
        if backend == "pallas":
            ours[(n, batch)] = (image, row)
        elif "pallas" in backends and (n, batch) in ours and backend != "gsplat":
            row["max_abs_diff_vs_pallas"] = float(np.max(np.abs(ours[(n, batch)][0] - image)))
        if backend == "gsplat" and (n, batch) in ours:
            row["max_abs_diff_vs_pallas"] = float(np.max(np.abs(ours[(n, batch)][0] - image)))
        if "intersections" in row:
            row.update(traffic_floor(n, batch, row["intersections"], width, height))
            if jax.default_backend() == "cpu":
                row["alpha_pass_ms"] = alpha_pass_ms(row["intersections"], runs)
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
