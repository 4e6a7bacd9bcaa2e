"""Self-supervised training of the body inpainter for one identity (trainer task
"body_inpainter"), and the job that runs it and writes the inpainter folder.

Data: the identity's training frames in memory, uint8,
    head_rgb (N, S, S, 3)   the avatar's render of each frame at its tracked parameters
    head_alpha (N, S, S)    the render's alpha x 255
    frame (N, S, S, 3)      the ground-truth frame
    head_mask (N, S, S)     the tracked head-and-neck mask x 255 (track/head_masks.py)
The ground truth of the fill is the frame itself: the region around the head is removed
and the net must paint it back from the render and the context.

Batches (`SeamPatches`): square patches of `patch` px centred on points near the head's
outline (within `seam_band` px of it, where the seam always lies), each with its own
dilation radius drawn from `dilation` (min, max), so the net learns seams of any width
and sees its full-frame job's only hard part at every step. Centres are drawn once per
frame at setup (CENTRES_PER_FRAME of them, from `data_seed`), so the iterator only indexes
and crops; all per-step randomness comes from (data_seed, step), so batches are
deterministic, independent of the process count, and resume exactly from {"step"}.

Loss: w_seam_l1 * L1 over the removed region (`seam_l1`, the pixels the net paints;
everything else is the frame exactly) + w_ssim * (1 - SSIM) of the patch (structure of
the fill, e.g. stripes of clothing, that L1 alone blurs).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.composite.inpainter import (composite, dilate, make_inpainter, remove_region, save_inpainter,
                                                 seam_l1)
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.metrics.image import ssim
from flashtalker_jax.train.tasks import Task

ARRAY_KEYS = ("head_rgb", "head_alpha", "frame", "head_mask")
CENTRES_PER_FRAME = 512   # candidate patch centres kept per frame (a 512^2 frame's band has
                          # ~10^5 pixels; 512 samples cover it while costing 2 KB a frame)
MASK_CHUNK = 32           # frames per device call when finding the seam bands (bounds memory)
ARRAYS_FIX = ("write an .npz with head_rgb (N,S,S,3), head_alpha (N,S,S), frame (N,S,S,3) and "
              "head_mask (N,S,S), all uint8")


# ------------------------------------------------------------------ data

def check_arrays(arrays: Mapping[str, np.ndarray], source: str | os.PathLike = "inpainter arrays") -> int:
    """The frame count N; InputFileError naming `source` for missing keys, non-uint8
    arrays, or shapes that are not the module docstring's."""
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise InputFileError(source, f"lacks {missing} (has {sorted(arrays)})", ARRAYS_FIX)
    frame = arrays["frame"]
    if frame.ndim != 4 or frame.shape[-1] != 3 or frame.shape[1] != frame.shape[2]:
        raise InputFileError(source, f"frame has shape {frame.shape}, expected (N, S, S, 3)", ARRAYS_FIX)
    expected = {"head_rgb": frame.shape, "head_alpha": frame.shape[:3], "head_mask": frame.shape[:3],
                "frame": frame.shape}
    for key, shape in expected.items():
        if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            raise InputFileError(source, f"{key} is {arrays[key].dtype} {arrays[key].shape}, expected "
                                 f"uint8 {shape}", ARRAYS_FIX)
    return frame.shape[0]


@jax.jit
def _seam_band(head_alpha: jax.Array, head_mask: jax.Array, band: jax.Array) -> jax.Array:
    """(B, S, S) bool: pixels within `band` px of the outline of the head (the union of
    alpha and mask, thresholded at half as in remove_region)."""
    head = remove_region(head_alpha / 255.0, head_mask / 255.0, 0)
    outline = dilate(head, 1) - head        # the ring just outside the head
    return dilate(outline, band) > 0.5


def seam_centres(arrays: Mapping[str, np.ndarray], band: int, seed: int) -> np.ndarray:
    """(N, CENTRES_PER_FRAME, 2) int32 (row, col) drawn uniformly from each frame's seam
    band, or -1 rows for a frame without a head (it is never sampled)."""
    rng = np.random.default_rng(seed)
    n = len(arrays["frame"])
    centres = np.full((n, CENTRES_PER_FRAME, 2), -1, np.int32)
    for start in range(0, n, MASK_CHUNK):
        stop = min(start + MASK_CHUNK, n)
        bands = np.asarray(_seam_band(arrays["head_alpha"][start:stop], arrays["head_mask"][start:stop],
                                      jnp.int32(band)))
        for i, frame_band in enumerate(bands, start):
            rows, cols = np.nonzero(frame_band)
            if len(rows):
                pick = rng.integers(len(rows), size=CENTRES_PER_FRAME)
                centres[i, :, 0], centres[i, :, 1] = rows[pick], cols[pick]
    return centres


class SeamPatches:
    """Endless batches of seam patches (module docstring); yields this process's rows
    {head_rgb, head_alpha, frame, head_mask (uint8 patches), radius (B,) int32}.

    Every process draws the same global batch from (seed, step) and crops its own rows
    [i*B/n, (i+1)*B/n), so the global batch does not depend on the process count and the
    state {"step"} resumes on any count (global_state, train/checkpoint.py)."""

    global_state = True

    def __init__(self, arrays: Mapping[str, np.ndarray], centres: np.ndarray, patch: int,
                 dilation: tuple[int, int], global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1):
        size = arrays["frame"].shape[1]
        if not 0 < patch <= size:
            raise ConfigError(f"task.patch={patch} must lie in 1..{size} (the frame size)")
        low, high = (int(v) for v in dilation)
        if not 0 <= low <= high:
            raise ConfigError(f"task.dilation={tuple(dilation)} must be (min, max) with 0 <= min <= max")
        if global_batch_size % process_count:
            raise ConfigError(f"global batch {global_batch_size} must divide over {process_count} processes")
        self._frames = np.flatnonzero(centres[:, 0, 0] >= 0)
        if not len(self._frames):
            raise ConfigError("no training frame has a head (head_alpha and head_mask are empty everywhere)")
        self._arrays, self._centres = {k: arrays[k] for k in ARRAY_KEYS}, centres
        self._patch, self._size, self._dilation = patch, size, (low, high)
        self._batch, self._seed = global_batch_size, seed
        self._local = global_batch_size // process_count
        self._rows = slice(process_index * self._local, (process_index + 1) * self._local)
        self._step = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self._seed, self._step))
        frames = rng.choice(self._frames, size=self._batch)
        centres = self._centres[frames, rng.integers(CENTRES_PER_FRAME, size=self._batch)]
        radius = rng.integers(self._dilation[0], self._dilation[1] + 1, size=self._batch).astype(np.int32)
        corners = np.clip(centres - self._patch // 2, 0, self._size - self._patch)
        self._step += 1
        frames, corners = frames[self._rows], corners[self._rows]
        batch = {key: np.stack([array[f, r:r + self._patch, c:c + self._patch]
                                for f, (r, c) in zip(frames, corners)])
                 for key, array in self._arrays.items()}
        batch["radius"] = radius[self._rows]
        return batch

    def get_state(self) -> dict:
        return {"step": self._step}

    def set_state(self, state: dict) -> None:
        self._step = int(state["step"])


# ------------------------------------------------------------------ loss

def unit_batch(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """uint8 patches -> float [0, 1] (head_rgb, head_alpha, frame, head_mask)."""
    return {k: jnp.asarray(batch[k], jnp.float32) / 255.0 for k in ARRAY_KEYS}


def make_loss_fn(task_cfg):
    """loss_fn(net, batch, key) -> (loss, metrics); the key is unused (the patches and radii
    come from the data iterator, so a step is deterministic given its batch)."""
    w = task_cfg.loss

    def loss_fn(net, batch, key):
        del key
        x = unit_batch(batch)
        remove = remove_region(x["head_alpha"], x["head_mask"], batch["radius"])
        out = composite(net, x["head_rgb"], x["head_alpha"], x["frame"], remove)
        seam = seam_l1(out, x["frame"], remove)
        structure = jnp.mean(ssim(out, x["frame"], 1.0))
        loss = w.seam_l1 * seam + w.ssim * (1.0 - structure)
        return loss, {"seam_l1": seam, "l1": jnp.mean(jnp.abs(out - x["frame"])), "ssim": structure,
                      "removed": jnp.mean(remove)}

    return loss_fn


def make_task_from_arrays(task_cfg: ml_collections.ConfigDict, arrays: Mapping[str, np.ndarray],
                          source: str | os.PathLike = "inpainter arrays") -> Task:
    """The trainer Task over in-memory arrays (module docstring)."""
    check_arrays(arrays, source)
    if task_cfg.patch % 2**task_cfg.depth:
        raise ConfigError(f"task.patch={task_cfg.patch} must be a multiple of 2^depth={2**task_cfg.depth}")
    centres = seam_centres(arrays, int(task_cfg.seam_band), int(task_cfg.data_seed))

    def make_model(rngs: nnx.Rngs):
        return make_inpainter(task_cfg, rngs)

    def make_data(process_index: int, process_count: int) -> SeamPatches:
        return SeamPatches(arrays, centres, int(task_cfg.patch), tuple(task_cfg.dilation), int(task_cfg.batch_size),
                           int(task_cfg.data_seed), process_index, process_count)

    return Task(make_model=make_model, loss_fn=make_loss_fn(task_cfg), make_data=make_data)


def make_task(task_cfg: ml_collections.ConfigDict) -> Task:
    """The registered factory: the arrays are read from the .npz at task.data."""
    from flashtalker_jax.utils.files import read_npz

    if not task_cfg.data:
        raise ConfigError("task.data is empty: set it to the .npz of the identity's inpainter arrays")
    arrays = read_npz(task_cfg.data, "inpainter training arrays", ARRAYS_FIX, ARRAY_KEYS, error=InputFileError)
    return make_task_from_arrays(task_cfg, arrays, task_cfg.data)


# ------------------------------------------------------------------ job

def train_inpainter(arrays: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict, out_dir: str | os.PathLike,
                    resume: bool = False, restart: bool = False) -> dict:
    """Train cfg.task on `arrays` in run folder `out_dir` (checkpoints/, metrics.jsonl,
    config.json: train/trainer.fit) and write the inpainter folder out_dir/inpainter.

    Returns status ("completed" or "preempted"), steps, seconds and inpainter (the folder;
    None when preempted, since a partial run is resumed rather than exported).
    """
    from flashtalker_jax.train.state import merge_model
    from flashtalker_jax.train.trainer import fit

    out_dir = Path(out_dir)
    start = time.perf_counter()
    task = make_task_from_arrays(cfg.task, arrays)
    result = fit(task, cfg, out_dir, resume=resume, restart=restart)
    folder = None
    if result.status != "preempted":
        folder = save_inpainter(out_dir / "inpainter", merge_model(result.graphdef, result.state), cfg.task)
    return {"status": result.status, "steps": result.step, "seconds": time.perf_counter() - start,
            "inpainter": folder}


def evaluate(net, arrays: Mapping[str, np.ndarray], radius: int, batch_size: int = 8) -> dict[str, float]:
    """{"seam_l1", "l1"} of the net on whole frames (as at inference) with one dilation
    `radius`: seam_l1 pooled over every removed pixel of every frame, l1 over all pixels."""
    check_arrays(arrays)

    @jax.jit
    def error_sums(rows):
        x = unit_batch(rows)
        remove = remove_region(x["head_alpha"], x["head_mask"], radius)
        error = jnp.abs(composite(net, x["head_rgb"], x["head_alpha"], x["frame"], remove) - x["frame"])
        return jnp.stack([jnp.sum(error * remove[..., None]), 3 * jnp.sum(remove), jnp.sum(error)])

    n = len(arrays["frame"])
    seam, removed, total = sum(np.asarray(error_sums({k: arrays[k][i:i + batch_size] for k in ARRAY_KEYS}),
                                          np.float64) for i in range(0, n, batch_size))
    return {"seam_l1": float(seam / max(removed, 1.0)), "l1": float(total / arrays["frame"].size)}
