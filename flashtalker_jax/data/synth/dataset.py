"""`flashtalker data synth`: a folder of procedural speaking identities plus their FLAME model.

OUT/flame/                 procedural FLAME-format head (generic_model.pkl, FLAME_texture.npz,
                           FLAME_masks.pkl, embeddings), loadable by path like a real one
OUT/identity_000/ ...      one VHAP-format folder per identity (see data/vhap.py)
OUT/config.json            the synthesiser's config (views.py re-renders with its shading)
(--report PATH of the CLI: per-identity frames, seconds, voice, wall time; sizes on disk)
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import ml_collections

from flashtalker_jax.data.synth.identity import synthesize_identity


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def synthesize_dataset(out: str | Path, identities: int, seconds: float, seed: int,
                       cfg: ml_collections.ConfigDict, show_progress: bool = True) -> dict:
    """Write `identities` speaking identities of about `seconds` each under `out`."""
    from flashtalker_jax.config import save_config
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    start = time.perf_counter()
    flame_dir = write_procedural_flame(out, seed=seed)
    model = load_flame_model(flame_dir)
    rows = [{"identity": "flame", "wall_seconds": time.perf_counter() - start}]
    for index in range(identities):
        t0, c0 = time.perf_counter(), cpu_seconds()
        folder = out / f"identity_{index:03d}"
        summary = synthesize_identity(folder, model, flame_dir, index, seed, seconds, cfg, show_progress)
        summary["wall_seconds"] = time.perf_counter() - t0
        # Wall time depends on what else runs on the machine; CPU time much less so.
        summary["cpu_seconds"] = cpu_seconds() - c0
        summary["megabytes"] = folder_bytes(folder) / 1e6
        rows.append(summary)
    return {"out": str(out), "identities": identities, "seconds_requested": seconds, "seed": seed,
            "resolution": [cfg.render.width, cfg.render.height], "supersample": cfg.render.supersample,
            "wall_seconds": time.perf_counter() - start, "total_megabytes": folder_bytes(out) / 1e6,
            "rows": rows}
