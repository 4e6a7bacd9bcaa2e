"""Render posed meshes to VHAP frames (image, mask, FLAME params), optionally in worker
processes. Frames are independent and written under their own names, so the output is
the same bytes whatever the number of workers.

This module imports only numpy-side code (no JAX), so spawned workers start quickly.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from flashtalker_jax.data import vhap
from flashtalker_jax.data.synth import mesh_render
from flashtalker_jax.utils.progress import progress

FRAMES_PER_TASK = 8


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything constant over a sequence: mesh topology, UVs, texture, camera, look."""
    faces: np.ndarray            # (F, 3)
    vt: np.ndarray               # (Vt, 2)
    ft: np.ndarray               # (F, 3)
    texture: np.ndarray          # (Ht, Wt, 3) float32
    K: np.ndarray                # (3, 3)
    c2w_opengl: np.ndarray       # (4, 4)
    width: int
    height: int
    supersample: int
    shading: mesh_render.Shading
    png_compress_level: int


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def render_frames(out: Path, first: int, vertices: np.ndarray, params: dict, scene: Scene) -> list[dict]:
    """Render and write frames first .. first + len(vertices) - 1; return their records."""
    w2c = np.linalg.inv(scene.c2w_opengl @ vhap.OPENGL_TO_OPENCV)
    records = []
    for i in range(vertices.shape[0]):
        rgb, alpha, _ = mesh_render.render_textured(
            vertices[i], scene.faces, scene.vt, scene.ft, scene.texture, scene.K, w2c,
            scene.width, scene.height, scene.shading, scene.supersample)
        t = first + i
        record = vhap.write_frame(out, t, to_uint8(rgb), to_uint8(alpha), {k: v[i] for k, v in params.items()},
                                  scene.png_compress_level)
        record.update(vhap.camera_record(scene.K, scene.c2w_opengl, scene.width, scene.height),
                      timestep_index=t, camera_index=0)
        records.append(record)
    return records


def render_sequence(out: Path, vertices: np.ndarray, params: dict, scene: Scene, workers: int,
                    show_progress: bool, desc: str) -> list[dict]:
    """All frames of a sequence, in `workers` spawned processes (1 = in this process)."""
    starts = range(0, vertices.shape[0], FRAMES_PER_TASK)
    chunks = [(s, vertices[s:s + FRAMES_PER_TASK], {k: v[s:s + FRAMES_PER_TASK] for k, v in params.items()})
              for s in starts]
    bar = progress(total=vertices.shape[0], desc=desc, unit="frame", disable=not show_progress)
    records = []
    if workers <= 1:
        for s, v, p in chunks:
            records += render_frames(out, s, v, p, scene)
            bar.update(len(v))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(render_frames, out, s, v, p, scene) for s, v, p in chunks]
            for future, (_, v, _) in zip(futures, chunks):
                records += future.result()
                bar.update(len(v))
    bar.close()
    return records
