"""Render speed of Gaussian avatars: FlashTalker's UV placement vs GaussianAvatars' per-face
placement (`flashtalker bench avatar`).

Each row renders a batch of B tracked frames of the identity at size x size: FLAME
forward, the avatar's deformer, binding and the rasterizer (rgb + lip channel), i.e.
everything one output frame costs, jitted, timed as the median of `runs` calls after a
warm-up (compile) call. fps = B / median seconds. Avatars are freshly initialised from
the identity's first training frame for each placement config (the count of a per-face
avatar after densification is its active count, which a trained avatar folder gives
with `avatar_dir`). Fresh avatars get no free capacity slots (task.avatar.capacity=0); a
trained avatar renders its inactive slots too, as training does. A trained avatar renders
its own tracked frames from its own camera (the avatar folder's track.npz and view.npz, as
`speak` does), so it needs no identity folder; fresh avatars are built from data_dir's.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.adapt import make_task
from flashtalker_jax.avatar.frames import audio_frame_features, load_frames, split_indices
from flashtalker_jax.avatar.renderer import AvatarRenderer, RenderSettings, load_renderer, render
from flashtalker_jax.config import load_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.model import FlameParams

DEFAULT_CONFIGS = ("adapt_flashtalker", "adapt_gaussianavatars")  # UV and per-face placement


def _frames(data_dir: Path, task_cfg, size: int, batch: int, audio: bool) -> dict[str, jax.Array]:
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(data_dir)
    indices = split_indices(seq, tuple(task_cfg.train_splits))
    indices = np.resize(indices, batch)  # repeats frames when the split is shorter than the batch
    features = audio_frame_features(seq) if audio else None
    return {k: jnp.asarray(v) for k, v in load_frames(seq, indices, size, features).items()}


def _stored_frames(avatar_dir: Path, model, size: int, batch: int) -> dict[str, jax.Array]:
    """A batch of the avatar folder's own tracked frames (repeated when fewer) from its camera,
    keyed as load_frames keys them; audio rows are the training mean (the model's drive
    normalisation), which costs what any audio costs."""
    from flashtalker_jax.avatar.export import read_replay, view_at

    view, track = read_replay(avatar_dir)
    rows = np.resize(np.arange(len(track["timesteps"])), batch)
    viewmat, K = view_at(view, size)
    frames = {f"flame_{k}": track[k][rows] for k in ("expr", "jaw_pose", "rotation", "neck_pose",
                                                       "eyes_pose", "translation")}
    frames.update(viewmat=np.repeat(viewmat[None], batch, 0), K=np.repeat(K[None], batch, 0))
    if model.audio_dim:
        frames["audio"] = np.repeat(np.asarray(model.audio_mean[...])[None], batch, 0)
    return {k: jnp.asarray(v) for k, v in frames.items()}


def time_render(renderer: AvatarRenderer, frames: dict, runs: int) -> float:
    """Median seconds of one jitted render of the batch `frames` (after a warm-up call)."""
    n_expr = renderer.model.flame.expr_dirs.shape[-1]
    graphdef, state = nnx.split(renderer.model)

    @jax.jit
    def draw(state, frames):
        model = nnx.merge(graphdef, state)
        params = FlameParams.from_track(frames, prefix="flame_", n_expr=n_expr)
        result = render(AvatarRenderer(model, renderer.settings), params, frames["viewmat"],
                        frames["K"], frames.get("audio"))
        return result.rgb, result.lip

    jax.block_until_ready(draw(state, frames))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(draw(state, frames))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _row(label: str, model, task_cfg, data_dir: Path | None, size: int, batch: int, runs: int,
         avatar_dir: Path | None = None) -> dict:
    if avatar_dir is not None:
        frames = _stored_frames(avatar_dir, model, size, batch)
    else:
        frames = _frames(data_dir, task_cfg, size, batch, audio=bool(model.audio_dim))
    seconds = time_render(AvatarRenderer(model, RenderSettings.from_config(task_cfg, size)), frames, runs)
    active = int(np.sum(np.asarray(model.avatar.active[...])))
    return {"avatar": label, "placement": task_cfg.placement.mode, "size": size, "batch": batch,
            "gaussians": active, "capacity": model.avatar.capacity,
            "backend": task_cfg.render.backend, "ms_per_batch": 1e3 * seconds,
            "fps": batch / seconds}


def bench_avatar(data_dir, sizes: Iterable[int], batches: Iterable[int], *,
                 configs: Iterable[str] = DEFAULT_CONFIGS, avatar_dir=None,
                 overrides: Iterable[str] = (), runs: int = 5,
                 progress: Callable = lambda it: it) -> list[dict]:
    """Rows (module docstring) for a fresh avatar of every adapt config (configs/*.py name or
    path) x size x batch, plus the trained avatar in avatar_dir when given. overrides:
    `--config.` style overrides applied to every config (e.g. task.render.backend=tiles).
    data_dir (an identity's VHAP folder) is needed by the fresh avatars only: with None,
    pass configs=() and avatar_dir; the trained avatar renders its own stored frames."""
    configs = tuple(configs)
    if data_dir is None and configs:
        raise ConfigError("fresh avatars are built from an identity's frames: pass --data (a VHAP "
                          "folder), or time only a trained avatar (--avatar, no --configs)")
    if not configs and avatar_dir is None:
        raise ConfigError("nothing to time: pass --avatar and/or --configs")
    data_dir = Path(data_dir) if data_dir is not None else None
    if avatar_dir is not None:
        from flashtalker_jax.avatar.export import resolve_avatar_dir

        avatar_dir = resolve_avatar_dir(avatar_dir)
    overrides = [o.removeprefix("--config.") for o in overrides]
    jobs = []
    defaults = ["task.avatar.capacity=0", f"task.resolution={max(sizes)}"]  # no free slots
    for name in configs:
        config = load_config(name, [*defaults, *overrides, f"task.data={data_dir}"])
        jobs.append((f"fresh {Path(name).stem}", config.task))
    if avatar_dir is not None:
        jobs.append((str(avatar_dir), None))
    rows = []
    plan = [(job, size, batch) for job in jobs for size in sizes for batch in batches]
    models = {}
    for (label, task_cfg), size, batch in progress(plan):
        if label not in models:
            if task_cfg is None:
                renderer, cfg = load_renderer(avatar_dir)
                models[label] = (renderer.model, cfg)
            else:
                models[label] = (make_task(task_cfg).make_model(nnx.Rngs(0)), task_cfg)
        model, cfg = models[label]
        rows.append(_row(label, model, cfg, data_dir, size, batch, runs,
                         avatar_dir if task_cfg is None else None))
    return rows
