"""The avatar at inference: the identity's personalised FLAME model, the Gaussian avatar and
its render settings, and the one function that renders them (speak, eval, eval-avatar,
bench; adaptation's loss renders through the same `render`).

- `AvatarModel` (nnx): avatar (GaussianAvatar), flame (FlameArrays: the FLAME arrays with
  the identity's shape and static offset baked into the template, as non-trained
  variables so saved avatars are self-contained), is_lip (C,) lip-triangle flags, and the
  audio conditioning: `audio_dim` (0: the avatar takes no audio) with the training
  features' mean/std (A,) when > 0. adapt_model.AdaptModel extends it with the per-frame
  refinement tables that only training uses.
- `RenderSettings`: size, background and rasterizer settings (static).
- `AvatarRenderer` = model + settings, a pytree; `render(renderer, FlameParams, viewmat,
  K, audio)` -> `RenderResult`.
- `load_renderer(avatar_dir)`: an avatar folder (export.py) without the training tables.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.avatar import Binding, GaussianAvatar, Gaussians, drive_from_flame
from flashtalker_jax.avatar.sampling import Placement, build_placement, faces_in_masks
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.flame.landmarks import vertices_to_landmarks
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import flame_template, load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.model import FlameModel, FlameOutput, FlameParams
from flashtalker_jax.render.rasterize import rasterize


class FlameConst(nnx.Variable):
    """A fixed array of the identity's FLAME model (or its audio normalisation)."""


def personalise(model: FlameModel, shape: np.ndarray, static_offset: np.ndarray | None) -> FlameModel:
    """The model with the identity's shape (and static offset) baked into the template and
    no shape components left."""
    template = model.v_template + jnp.einsum("vcl,l->vc", model.shape_dirs[..., :len(shape)],
                                             jnp.asarray(shape, model.dtype))
    if static_offset is not None:
        template = template + jnp.asarray(static_offset, model.dtype)
    return dataclasses.replace(model, v_template=template, shape_dirs=model.shape_dirs[..., :0])


class FlameArrays(nnx.Module):
    def __init__(self, model: FlameModel):
        self.parents = model.parents
        # shape_dirs is empty after personalise (Orbax cannot save zero-size arrays).
        self.fields = tuple(f.name for f in dataclasses.fields(FlameModel)
                            if f.name not in ("parents", "shape_dirs")
                            and getattr(model, f.name) is not None)
        for name in self.fields:
            setattr(self, name, FlameConst(getattr(model, name)))

    def model(self) -> FlameModel:
        arrays = {n: getattr(self, n)[...] for n in self.fields}
        shape_dirs = jnp.zeros(arrays["v_template"].shape + (0,), arrays["v_template"].dtype)
        return FlameModel(parents=self.parents, shape_dirs=shape_dirs, **arrays)


@dataclasses.dataclass(frozen=True)
class AvatarSpec:
    """Everything besides the config that fixes the model's shapes and constants."""
    flame: FlameModel            # personalised (shape baked in), with teeth
    placement: Placement
    is_lip: np.ndarray           # (N,) bool
    n_frames: int
    n_cameras: int
    audio_mean: np.ndarray | None
    audio_std: np.ndarray | None
    initial_colors: np.ndarray | None  # (N, 3) in [0, 1]


def build_spec(task_cfg, flame_dir: Path, shape: np.ndarray, static_offset: np.ndarray | None,
               n_frames: int, n_cameras: int, audio: np.ndarray | None = None) -> AvatarSpec:
    """The spec of an identity; `audio` (T, A): the per-frame features it is trained on
    (their mean/std normalise the drive), None for an avatar without audio."""
    base = load_flame_model(flame_dir, with_teeth=True)
    if static_offset is not None:
        static_offset = np.asarray(static_offset, np.float32)
        missing = base.n_vertices - static_offset.shape[0]
        if missing < 0 or static_offset.shape[1:] != (3,):
            raise ModelFileError(flame_dir, f"static_offset has shape {static_offset.shape}, the "
                                            f"model has {base.n_vertices} vertices")
        static_offset = np.pad(static_offset, ((0, missing), (0, 0)))  # teeth get none
    flame = personalise(base, np.asarray(shape, np.float32), static_offset)
    vt, ft = load_uv_layout(flame_dir)
    masks = load_region_masks(flame_dir, v_template=flame_template(base))  # the pickle is read once
    pc = task_cfg.placement
    faces = np.asarray(flame.faces)
    placement = build_placement(pc.mode, np.asarray(flame.v_template), faces, vt, ft, masks,
                                uv_resolution=pc.uv_resolution, teeth_per_face=pc.teeth_per_face,
                                upper_masks=tuple(pc.upper_masks), lower_masks=tuple(pc.lower_masks),
                                per_face_masks=tuple(pc.per_face_masks))
    is_lip = faces_in_masks(faces, masks, tuple(pc.lip_masks), "lip")[placement.face_ids]
    mean = std = None
    if audio is not None:
        mean, std = audio.mean(0), audio.std(0) + 1e-3
    return AvatarSpec(flame=flame, placement=placement, is_lip=is_lip, n_frames=n_frames,
                      n_cameras=n_cameras, audio_mean=mean, audio_std=std, initial_colors=None)


def gaussian_avatar(task_cfg, spec: AvatarSpec, rngs: nnx.Rngs) -> GaussianAvatar:
    """The (freshly initialised) Gaussian avatar of the spec under the task config."""
    audio_dim = 0 if spec.audio_mean is None else int(spec.audio_mean.shape[0])
    return GaussianAvatar(spec.placement, np.asarray(spec.flame.v_template),
                          np.asarray(spec.flame.faces), spec.flame.n_expr, audio_dim,
                          task_cfg.avatar, rngs, densifiable=task_cfg.densify.enabled,
                          landmarks=neutral_landmarks(spec.flame))


def neutral_landmarks(flame: FlameModel) -> np.ndarray:
    """The static FLAME landmarks (L, 3) on the personalised neutral template (the
    region-weighted deformer's anchors; (0, 3) when the model has no embedding)."""
    with jax.ensure_compile_time_eval():  # constants, also when built inside jit
        return np.asarray(vertices_to_landmarks(flame.v_template[None], flame.faces, flame.lmk_faces_idx,
                                                flame.lmk_bary_coords)[0])


class AvatarModel(nnx.Module):
    """avatar, flame, is_lip (C,), audio_dim and, when > 0, audio_mean / audio_std (A,)
    (module docstring). Variable paths are those of state.npz (export.py)."""

    def __init__(self, avatar: GaussianAvatar, spec: AvatarSpec):
        self.avatar = avatar
        self.flame = FlameArrays(spec.flame)
        is_lip = np.zeros(avatar.capacity, bool)  # free capacity slots are not lips
        is_lip[:len(spec.is_lip)] = spec.is_lip
        self.is_lip = Binding(jnp.asarray(is_lip))
        self.audio_dim = 0 if spec.audio_mean is None else int(spec.audio_mean.shape[0])
        if self.audio_dim:
            self.audio_mean = FlameConst(jnp.asarray(spec.audio_mean))
            self.audio_std = FlameConst(jnp.asarray(spec.audio_std))

    def audio_drive(self, audio: jax.Array | None, batch: int) -> jax.Array | None:
        """Normalised audio features (B, A) for the deformer; None without audio. Refuses
        features the avatar does not take and missing ones it needs."""
        if not self.audio_dim:
            if audio is not None:
                raise ValueError(f"the avatar takes no audio, got features {audio.shape}")
            return None
        if audio is None:
            raise ValueError(f"the avatar takes {self.audio_dim} audio features per frame, got none")
        chex.assert_shape(audio, (batch, self.audio_dim))
        return (audio - self.audio_mean[...]) / self.audio_std[...]


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """Output size (square), background rgb, rasterizer backend and buffer sizes
    (task.render of the avatar's config)."""
    size: int
    background: tuple[float, ...]
    backend: str
    intersections_per_gaussian: int
    per_tile: int | None
    tile_chunk: int | None

    @classmethod
    def from_config(cls, task_cfg, size: int | None = None, backend: str | None = None) -> "RenderSettings":
        r = task_cfg.render
        return cls(size=int(size or task_cfg.resolution), background=tuple(task_cfg.background),
                   backend=backend or r.backend, intersections_per_gaussian=r.intersections_per_gaussian,
                   per_tile=r.per_tile, tile_chunk=r.tile_chunk)


@dataclasses.dataclass(frozen=True)
class AvatarRenderer:
    model: AvatarModel
    settings: RenderSettings


jax.tree_util.register_dataclass(AvatarRenderer, data_fields=["model"], meta_fields=["settings"])


class RenderResult(NamedTuple):
    """rgb (B, S, S, 3) on settings.background; lip (B, S, S) coverage of lip Gaussians; the
    Gaussians and the FLAME output behind them; overflow (B,) = intersections needed -
    buffer slots (> 0 cannot reach the caller: rasterize re-runs eagerly or raises
    BufferOverflowError under jit, as it does for a "tiles" per-tile list longer than
    render.per_tile); alpha (B, S, S) the head's coverage (1 - transmittance), what puts
    the head over a real frame."""
    rgb: jax.Array
    lip: jax.Array
    gaussians: Gaussians
    flame: FlameOutput
    overflow: jax.Array
    alpha: jax.Array


def render(renderer: AvatarRenderer, params: FlameParams, viewmat: jax.Array, K: jax.Array,
           audio: jax.Array | None = None) -> RenderResult:
    """B frames of FLAME parameters (no shape: it is in the personalised model), cameras
    viewmat (B, 4, 4) world-to-camera OpenCV and K (B, 3, 3) pixels at settings.size, audio
    features (B, A) exactly when the avatar takes audio."""
    model, s = renderer.model, renderer.settings
    b = params.batch
    chex.assert_shape(viewmat, (b, 4, 4))
    chex.assert_shape(K, (b, 3, 3))
    flame = model.flame.model()
    out = flame_forward(flame, params)
    gaussians = model.avatar(out.vertices, flame.faces,
                             drive_from_flame(params, model.audio_drive(audio, b), out.landmarks))
    # The lip flags ride along as a fourth colour channel: the lip silhouette loss reads it.
    lip = jnp.broadcast_to(model.is_lip[...].astype(jnp.float32)[None, :, None],
                           gaussians.colors.shape[:2] + (1,))
    colors = jnp.concatenate([gaussians.colors, lip], -1)
    background = jnp.broadcast_to(jnp.asarray(s.background + (0.0,), jnp.float32), (b, 4))
    capacity = s.intersections_per_gaussian * model.avatar.capacity
    image = rasterize(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                      colors, viewmat, K, s.size, s.size, background=background, backend=s.backend,
                      capacity=capacity, per_tile=s.per_tile, tile_chunk=s.tile_chunk)
    return RenderResult(image.rgb[..., :3], image.rgb[..., 3], gaussians, out,
                        image.n_intersections - capacity, image.alpha)


def load_renderer(avatar_dir, overrides: tuple[str, ...] = (), *, size: int | None = None,
                  backend: str | None = None):
    """(AvatarRenderer, task config) of an avatar folder written by `flashtalker adapt`
    (RUN/avatar or the run folder RUN). `overrides`: `--config.task.a.b=v` items applied to
    the saved task config (render settings such as task.render.per_tile, eval settings);
    size / backend replace its resolution / render backend. ModelFileError naming the
    folder when it is missing, not an avatar, or written by an incompatible version."""
    from flashtalker_jax.avatar import export

    avatar_dir = export.resolve_avatar_dir(avatar_dir)
    if not avatar_dir.is_dir():
        raise ModelFileError(avatar_dir, "avatar folder not found",
                             "pass RUN/avatar written by `flashtalker adapt`")
    folder = export.read_avatar_folder(avatar_dir)
    task_cfg = folder.task_cfg
    if overrides:
        import ml_collections

        from flashtalker_jax.config import apply_overrides

        wrapper = ml_collections.ConfigDict({"task": task_cfg})
        apply_overrides(wrapper, list(overrides), source=str(avatar_dir / "config.json"))
        task_cfg = wrapper.task
    try:
        meta = folder.meta
        audio = np.zeros((2, meta["audio_dim"]), np.float32) if meta["audio_dim"] else None
        spec = build_spec(task_cfg, avatar_dir / "flame", folder.shape, folder.static_offset,
                          meta["n_frames"], meta["n_cameras"], audio)
        model = AvatarModel(gaussian_avatar(task_cfg, spec, nnx.Rngs(0)), spec)
        export.restore_state(model, folder, skip=("refinement",))
        settings = RenderSettings.from_config(task_cfg, size, backend)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # config.json lacks a field this code needs, or arrays have other shapes: the folder
        # was written by another version of the avatar code.
        raise ModelFileError(avatar_dir, f"written by an incompatible version of flashtalker-jax "
                                         f"({type(exc).__name__}: {exc})",
                             "re-run `flashtalker adapt` with this version") from exc
    return AvatarRenderer(model, settings), task_cfg
