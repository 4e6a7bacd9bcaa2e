"""The avatar as the evaluation sees it: FLAME parameters + cameras -> frames, projected
FLAME landmarks, meshes and mouth opening, in fixed-size jitted batches with a progress bar.

`pipeline/avatar.load_avatar_renderer` (the `speak` render stage) renders one fixed camera
and returns frames and mouth opening only; evaluation needs each held-out frame's own
camera and the FLAME landmarks and vertices behind every frame (LMD, stability, LVE), so
this module builds its own batch function on the same core, `avatar.adapt.render`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import mouth_opening
from flashtalker_jax.metrics.lmd import project_points
from flashtalker_jax.utils.progress import progress

MM_PER_M = 1000.0
DRIVE_KEYS = ("expr", "jaw_pose", "rotation", "neck_pose", "eyes_pose", "translation")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Per frame: rgb (T, S, S, 3) float in [0, 1]; landmarks (T, L, 2) projected FLAME
    landmarks in pixels (smplx order: 51 static, then 17 contour); landmarks3d (T, L, 3)
    world; mouth_mm (T,) inner-lip opening."""
    rgb: np.ndarray
    landmarks: np.ndarray
    landmarks3d: np.ndarray
    mouth_mm: np.ndarray


@dataclasses.dataclass(frozen=True)
class EvalRenderer:
    model: object
    task_cfg: object
    avatar_dir: Path
    size: int
    n_expr: int
    audio_dim: int
    batch_size: int
    _frames: object
    _mesh: object
    _points: object

    def render(self, track: dict[str, np.ndarray], viewmat: np.ndarray, K: np.ndarray,
               desc: str = "render", show_progress: bool = True) -> Rendered:
        """track: DRIVE_KEYS (T, k) [+ audio (T, A)]; viewmat (T, 4, 4); K (T, 3, 3) at size."""
        inputs = {k: np.asarray(track[k], np.float32) for k in DRIVE_KEYS}
        if self.audio_dim:
            inputs["audio"] = np.asarray(track["audio"], np.float32)
        inputs.update(viewmat=np.asarray(viewmat, np.float32), K=np.asarray(K, np.float32))
        return Rendered(*self._batched(self._frames, inputs, desc, show_progress))

    def flame_points(self, track: dict[str, np.ndarray], viewmat: np.ndarray,
                     K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLAME landmarks of a track without rasterising: (T, L, 2) px, (T, L, 3) world."""
        inputs = {k: np.asarray(track[k], np.float32) for k in DRIVE_KEYS}
        inputs.update(viewmat=np.asarray(viewmat, np.float32), K=np.asarray(K, np.float32))
        return tuple(self._batched(self._points, inputs, "landmarks", False))

    def expression_mesh(self, track: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (T, V, 3) m and mouth opening (T,) mm of the track's expression and jaw
        with zero head pose, neck, eyes and translation: what lip metrics compare."""
        inputs = {k: np.asarray(track[k], np.float32) for k in ("expr", "jaw_pose")}
        return tuple(self._batched(self._mesh, inputs, "mesh", False))

    def _batched(self, fn, inputs: dict[str, np.ndarray], desc: str, show_progress: bool) -> list:
        t = next(iter(inputs.values())).shape[0]
        for key, value in inputs.items():
            if value.shape[0] != t:
                raise ValueError(f"driving {key} has {value.shape[0]} frames, expected {t}")
        b = self.batch_size
        parts = []
        starts = range(0, t, b)
        for start in progress(starts, total=len(starts), desc=desc, unit="batch",
                              disable=not show_progress):
            # Pad the last batch with its final row: one compiled shape for every batch.
            batch = {k: jnp.asarray(_pad_rows(v[start:start + b], b)) for k, v in inputs.items()}
            try:
                outputs = fn(self.model, batch)
            except jax.errors.JaxRuntimeError as exc:
                if "BufferOverflowError" not in str(exc):
                    raise
                # Raised by rasterize under jit; the buffer sizes live in the avatar's config.
                line = next(x for x in str(exc).splitlines() if "BufferOverflowError" in x)
                raise ConfigError(f"rendering {self.avatar_dir} overflowed a buffer ({line.strip()}); "
                                  "raise it with --config.task.render.per_tile=N or "
                                  "--config.task.render.intersections_per_gaussian=N") from None
            parts.append([np.asarray(x)[:min(b, t - start)] for x in outputs])
        return [np.concatenate(p) for p in zip(*parts)]


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
    return x if x.shape[0] == n else np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], 0)])


def load_eval_renderer(avatar_dir: str | Path, batch_size: int = 4,
                       overrides: tuple[str, ...] = ()) -> EvalRenderer:
    """`avatar_dir`: RUN/avatar written by `flashtalker adapt`, or the run folder RUN.
    `overrides`: `--config.task.a.b=v` items applied to the avatar's saved task config
    (render settings such as task.render.per_tile)."""
    from flashtalker_jax.avatar.adapt import render
    from flashtalker_jax.flame.lbs import flame_forward
    from flashtalker_jax.flame.model import FlameParams
    from flashtalker_jax.pipeline.avatar import open_avatar

    avatar_dir = Path(avatar_dir)
    if (avatar_dir / "avatar").is_dir():
        avatar_dir = avatar_dir / "avatar"
    model, task_cfg = open_avatar(avatar_dir)
    if overrides:
        import ml_collections

        from flashtalker_jax.config import apply_overrides

        wrapper = ml_collections.ConfigDict({"task": task_cfg})
        apply_overrides(wrapper, list(overrides), source=str(avatar_dir / "config.json"))
        task_cfg = wrapper.task
    size = int(task_cfg.resolution)

    def params_of(batch):
        b = batch["rotation"].shape[0]
        return FlameParams(shape=jnp.zeros((b, 0)), **{k: batch[k] for k in DRIVE_KEYS})

    @jax.jit
    def points(model, batch):
        out = flame_forward(model.flame.model(), params_of(batch))
        return jax.vmap(project_points)(out.landmarks, batch["viewmat"], batch["K"]), out.landmarks

    @jax.jit
    def frames(model, batch):
        rgb, _, _, out, _ = render(model, params_of(batch), batch["viewmat"], batch["K"],
                                   batch.get("audio"), task_cfg, size)
        landmarks = jax.vmap(project_points)(out.landmarks, batch["viewmat"], batch["K"])
        return (jnp.clip(rgb, 0.0, 1.0), landmarks, out.landmarks,
                mouth_opening(out.landmarks) * MM_PER_M)

    @jax.jit
    def mesh(model, batch):
        b = batch["jaw_pose"].shape[0]
        zeros3 = jnp.zeros((b, 3))
        params = FlameParams(shape=jnp.zeros((b, 0)), expr=batch["expr"], jaw_pose=batch["jaw_pose"],
                             rotation=zeros3, neck_pose=zeros3, eyes_pose=jnp.zeros((b, 6)),
                             translation=zeros3)
        out = flame_forward(model.flame.model(), params)
        return out.vertices, mouth_opening(out.landmarks) * MM_PER_M

    n_expr = int(model.flame.expr_dirs.shape[-1])
    audio_dim = int(model.audio_mean.shape[0]) if hasattr(model, "audio_mean") else 0
    return EvalRenderer(model, task_cfg, avatar_dir, size, n_expr, audio_dim, batch_size, frames, mesh,
                        points)
