"""The avatar as the evaluation sees it: FLAME parameters + cameras -> frames, projected
FLAME landmarks, meshes and mouth opening, in fixed-size jitted batches with a progress bar.

`pipeline/avatar.load_avatar_renderer` (the `speak` render stage) renders one fixed camera
and returns frames and mouth opening only; evaluation needs each held-out frame's own
camera and the FLAME landmarks and vertices behind every frame (LMD, stability, LVE), so
this module builds its own batch functions on the same inference renderer
(`avatar/renderer.py`: load_renderer, render).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import mouth_opening
from flashtalker_jax.metrics.lip import MM_PER_M
from flashtalker_jax.render.camera import project_points
from flashtalker_jax.render.rasterize import overflow_message
from flashtalker_jax.utils.progress import progress

if TYPE_CHECKING:  # the renderer's imports (flax, the rasterizer) load when an avatar does
    from flashtalker_jax.avatar.renderer import AvatarRenderer

DRIVE_KEYS = ("expr", "jaw_pose", "rotation", "neck_pose", "eyes_pose", "translation")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Per frame: rgb (T, S, S, 3) float in [0, 1]; landmarks (T, L, 2) projected FLAME
    landmarks in pixels (smplx order: 51 static, then 17 contour); landmarks3d (T, L, 3)
    world; mouth_mm (T,) inner-lip opening; alpha (T, S, S) the head's coverage (a
    real-footage avatar's rgb is the head on black, put over the frame by composite/)."""
    rgb: np.ndarray
    landmarks: np.ndarray
    landmarks3d: np.ndarray
    mouth_mm: np.ndarray
    alpha: np.ndarray


@dataclasses.dataclass(frozen=True)
class EvalRenderer:
    renderer: AvatarRenderer
    task_cfg: object
    avatar_dir: Path
    batch_size: int
    _frames: object
    _mesh: object
    _points: object

    @property
    def size(self) -> int:
        return self.renderer.settings.size

    @property
    def n_expr(self) -> int:
        return int(self.renderer.model.flame.expr_dirs.shape[-1])

    @property
    def audio_dim(self) -> int:
        """Per-frame audio features the avatar takes (0: none)."""
        return self.renderer.model.audio_dim

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
                outputs = fn(self.renderer, batch)
            except jax.errors.JaxRuntimeError as exc:
                message = overflow_message(exc)
                if message is None:
                    raise
                # Raised by rasterize under jit; the buffer sizes live in the avatar's config.
                raise ConfigError(f"rendering {self.avatar_dir} overflowed a buffer (BufferOverflowError: {message}); "
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
    from flashtalker_jax.avatar.export import resolve_avatar_dir
    from flashtalker_jax.avatar.renderer import load_renderer, render
    from flashtalker_jax.flame.lbs import flame_forward
    from flashtalker_jax.flame.model import FlameParams

    avatar_dir = resolve_avatar_dir(avatar_dir)
    renderer, task_cfg = load_renderer(avatar_dir, tuple(overrides))

    def from_track(renderer, batch, neutral=()):
        # A track with fewer expression components (e.g. `flashtalker track` fits 50 of the
        # head's 100): the rest are zero, as in adaptation (adapt.render_training_frames).
        n_expr = renderer.model.flame.expr_dirs.shape[-1]
        return FlameParams.from_track(batch, n_expr=n_expr, neutral=neutral)

    @jax.jit
    def points(renderer, batch):
        out = flame_forward(renderer.model.flame.model(), from_track(renderer, batch))
        return jax.vmap(project_points)(out.landmarks, batch["viewmat"], batch["K"]), out.landmarks

    @jax.jit
    def frames(renderer, batch):
        result = render(renderer, from_track(renderer, batch), batch["viewmat"], batch["K"],
                        batch.get("audio"))
        out = result.flame
        landmarks = jax.vmap(project_points)(out.landmarks, batch["viewmat"], batch["K"])
        return (jnp.clip(result.rgb, 0.0, 1.0), landmarks, out.landmarks,
                mouth_opening(out.landmarks) * MM_PER_M, result.alpha)

    @jax.jit
    def mesh(renderer, batch):
        # Lip metrics compare expression and jaw alone: the head pose is the rest pose.
        params = from_track(renderer, batch, neutral=("rotation", "neck_pose", "eyes_pose", "translation"))
        out = flame_forward(renderer.model.flame.model(), params)
        return out.vertices, mouth_opening(out.landmarks) * MM_PER_M

    return EvalRenderer(renderer, task_cfg, avatar_dir, batch_size, frames, mesh, points)
