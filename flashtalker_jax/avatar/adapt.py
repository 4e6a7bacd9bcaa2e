"""Per-identity adaptation as a trainer task ("avatar_adapt"), rendering, and the avatar
folder that later commands load.

Training frames drive the identity's FLAME mesh with their tracked parameters (plus the
per-frame refinements once `refine_start` is reached); the avatar turns the posed mesh
into Gaussians, the rasterizer renders them with an extra lip channel, and the loss is
  w_l1 L1 + w_ssim (1 - SSIM)                              (photometric)
  + w_pos position + w_scale scale                         (binding regularisers)
  + w_lip_anchor lip anchoring + w_lip_sil lip silhouette  (lip-guided supervision)
  + w_refine mean squared refinement                       (keeps tracked params close)
  + w_perceptual LPIPS                                     (optional, user weights)
(see losses.py). With `densify.enabled` (per-face placement) the loss also feeds
binding-aware densification and pruning (densify.py, `_densifying_loss_fn`). Ground truth is composited on `background` with the tracked foreground
mask when `use_mask` is on, as the render is.

Avatar folder (`export_avatar`): config.json (the task config), meta.json (format_version,
frame and camera counts, audio feature size), flame/ (copy of the FLAME files used),
identity.npz (shape, static_offset) and state.npz (every model variable by its path).
FORMAT_VERSION history: 1 = the unversioned folders of the first session (no field);
2 = adds the field and, for densified per-face avatars, the template shifts and
densification variables. `load_avatar` reads exactly FORMAT_VERSION and names meta.json
with a fix otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.avatar import densify, losses
from flashtalker_jax.avatar.adapt_data import (AdaptIterator, audio_frame_features, load_frames,
                                               split_indices)
from flashtalker_jax.avatar.adapt_model import (REFINED_KEYS, AdaptModel, FlameConst,
                                                FrameRefinement, personalise)
from flashtalker_jax.avatar.avatar import GaussianAvatar, ViewProbe, drive_from_flame
from flashtalker_jax.avatar.binding import bound_anchors
from flashtalker_jax.avatar.sampling import Placement, build_placement, faces_in_masks
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import (find_model_file, load_flame_model, load_region_masks,
                                          load_uv_layout)
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.render.rasterize import rasterize
from flashtalker_jax.train.tasks import Task


FORMAT_VERSION = 2


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


def resolve_flame_dir(task_cfg, data_dir: Path) -> Path:
    path = Path(task_cfg.flame) if task_cfg.flame else data_dir / "flame"
    if not path.exists():
        raise ModelFileError(path, "FLAME model folder not found",
                             "pass --flame DIR (a folder with generic_model.pkl, FLAME_texture.npz "
                             "and FLAME_masks.pkl) or put it at DATA/flame")
    return find_model_file(path).parent


def build_spec(task_cfg, flame_dir: Path, shape: np.ndarray, static_offset: np.ndarray | None,
               n_frames: int, n_cameras: int, audio: np.ndarray | None = None) -> AvatarSpec:
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
    masks = load_region_masks(flame_dir)
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


def make_model_factory(task_cfg, spec: AvatarSpec):
    audio_dim = 0 if spec.audio_mean is None else int(spec.audio_mean.shape[0])

    def make_model(rngs: nnx.Rngs) -> AdaptModel:
        avatar = GaussianAvatar(spec.placement, np.asarray(spec.flame.v_template),
                                np.asarray(spec.flame.faces), spec.flame.n_expr, audio_dim,
                                task_cfg.avatar, rngs, densifiable=task_cfg.densify.enabled)
        if spec.initial_colors is not None:
            logits = np.log(spec.initial_colors / (1 - spec.initial_colors))
            full = np.zeros((avatar.capacity, 3), np.float32)
            full[:len(logits)] = logits
            avatar.color_logits[...] = jnp.asarray(full) / avatar.lr_scale["color_logits"]
        refinement = FrameRefinement(spec.n_frames, spec.n_cameras, spec.flame.n_expr,
                                     task_cfg.refine_lr_scale)
        is_lip = np.zeros(avatar.capacity, bool)
        is_lip[:len(spec.is_lip)] = spec.is_lip
        model = AdaptModel(avatar, spec.flame, refinement, is_lip)
        if audio_dim:
            model.audio_mean = FlameConst(jnp.asarray(spec.audio_mean))
            model.audio_std = FlameConst(jnp.asarray(spec.audio_std))
        return model

    return make_model


def tracked_params(batch, n_expr: int) -> FlameParams:
    """FlameParams of the batch rows (no shape: it is baked into the personalised model)."""
    b = batch["flame_rotation"].shape[0]
    expr = batch["flame_expr"][:, :n_expr]
    return FlameParams(shape=jnp.zeros((b, 0)), expr=expr,
                       **{k: batch[f"flame_{k}"] for k in REFINED_KEYS if k != "expr"})


def render(model: AdaptModel, params: FlameParams, viewmat, K, audio, task_cfg, size: int):
    """(rgb (B, h, w, 3), lip mask (B, h, w), Gaussians, FlameOutput, overflow (B,)) of the
    given frames; overflow = intersections needed - buffer slots (> 0 cannot reach the
    caller: rasterize re-runs eagerly or raises BufferOverflowError under jit, as it does
    for a "tiles" per-tile list longer than render.per_tile)."""
    flame = model.flame.model()
    out = flame_forward(flame, params)
    if audio is not None and hasattr(model, "audio_mean"):
        audio = (audio - model.audio_mean[...]) / model.audio_std[...]
    else:
        audio = None
    gaussians = model.avatar(out.vertices, flame.faces, drive_from_flame(params, audio))
    lip = jnp.broadcast_to(model.is_lip[...].astype(jnp.float32)[None, :, None],
                           gaussians.colors.shape[:2] + (1,))
    colors = jnp.concatenate([gaussians.colors, lip], -1)
    batch = colors.shape[0]
    background = jnp.broadcast_to(jnp.asarray(tuple(task_cfg.background) + (0.0,), jnp.float32),
                                  (batch, 4))
    capacity = task_cfg.render.intersections_per_gaussian * model.avatar.capacity
    args = (gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, colors,
            viewmat, K, size, size)
    image = rasterize(*args, background=background, backend=task_cfg.render.backend,
                      capacity=capacity, per_tile=task_cfg.render.per_tile,
                      tile_chunk=task_cfg.render.tile_chunk)
    overflow = image.n_intersections - capacity
    return image.rgb[..., :3], image.rgb[..., 3], gaussians, out, overflow


def composite_target(batch, background) -> jax.Array:
    image = batch["image"].astype(jnp.float32) / 255.0
    alpha = batch["mask"].astype(jnp.float32)[..., None] / 255.0
    return image * alpha + jnp.asarray(background, jnp.float32) * (1.0 - alpha)


def make_loss_fn(task_cfg):
    """loss_fn(model, batch, key) -> (loss, metrics) for the trainer. Without densification
    the key is unused (adaptation is deterministic given the batch). With it, see
    `_densifying_loss_fn`."""
    terms = _loss_terms_fn(task_cfg)
    if task_cfg.densify.enabled:
        return _densifying_loss_fn(terms, task_cfg)

    def loss_fn(model: AdaptModel, batch, key):
        del key
        total, metrics, _ = terms(model, batch)
        return total, metrics

    return loss_fn


def _densifying_loss_fn(terms, task_cfg):
    """The loss for per-face densification (densify.py), which needs every Gaussian's
    image-plane positional gradient, something a trainer loss function never sees. So
    the function takes its own gradient once: value_and_grad of the loss with respect to
    the (stop-gradient) parameters and to a zero probe added to the world means, then
    returns the surrogate  loss + sum <grad, p - stop_gradient(p)>, whose value is the
    loss and whose gradient with respect to the parameters is exactly that gradient (no
    second render, no change to the trainer). The probe's gradient feeds the statistics;
    the avatar's densification bookkeeping then runs (model.densify), its writes landing
    in the non-trained variables the trainer carries and checkpoints."""
    cfg = densify.DensifyConfig.from_config(task_cfg.densify)
    size = task_cfg.resolution

    def loss_fn(model: AdaptModel, batch, key):
        graphdef, params, probe_state, rest = nnx.split(model, nnx.Param, ViewProbe, ...)

        def total_of(params, probe):
            probes = jax.tree.map(lambda _: probe, probe_state)
            total, metrics, (means, viewmat) = terms(nnx.merge(graphdef, params, probes, rest), batch)
            return total, (metrics, means, viewmat)

        probe = jnp.zeros((batch["K"].shape[0], model.avatar.capacity, 3), jnp.float32)
        (total, (metrics, means, viewmat)), (grads, probe_grad) = jax.value_and_grad(
            total_of, argnums=(0, 1), has_aux=True)(jax.lax.stop_gradient(params), probe)
        grad_sum, grad_count = densify.image_plane_grad_norms(probe_grad, means, viewmat,
                                                              batch["K"], size, size)
        model.densify(grad_sum, grad_count, key, cfg)
        linear = sum(jnp.vdot(g, p - jax.lax.stop_gradient(p)) for g, p in
                     zip(jax.tree.leaves(grads), jax.tree.leaves(params)))
        metrics.update(active=jnp.sum(model.avatar.active[...]),
                       slots_used=model.avatar.n_used[...])
        return total + linear, metrics

    return loss_fn


def _loss_terms_fn(task_cfg):
    """terms(model, batch) -> (total loss, metrics, (world means, refined viewmat))."""
    w = task_cfg.loss
    background = tuple(task_cfg.background)
    size = task_cfg.resolution
    perceptual = losses.make_perceptual_loss(w)

    def terms(model: AdaptModel, batch):
        n_expr = model.flame.expr_dirs.shape[-1]
        params = model.refinement.apply(tracked_params(batch, n_expr), batch["slot"], batch["refine"])
        viewmat = model.refinement.viewmat(batch["viewmat"], batch["camera"], batch["refine"])
        rgb, lip, g, out, overflow = render(model, params, viewmat, batch["K"], batch.get("audio"), task_cfg, size)
        target = composite_target(batch, background) if task_cfg.use_mask else batch["image"] / 255.0
        photo, metrics = losses.photometric_loss(rgb, target, w.l1, w.ssim)
        active = model.avatar.active[...]
        limit = losses.scale_limits(model.avatar.init_scale[...], w.scale_threshold,
                                    w.scale_limit_factor)
        position, scale = losses.binding_regularizers(g.local_means, g.local_log_scales, active,
                                                      w.position_threshold, limit)
        lip_anchor = losses.lip_anchor_loss(g.local_means, model.is_lip[...] & active)
        total = photo + w.position * position + w.scale * scale + w.lip_anchor * lip_anchor
        if w.lip_silhouette > 0:
            region = losses.lip_region_target(out.landmarks, viewmat, batch["K"], size, size)
            lip_sil = losses.lip_silhouette_loss(lip, region)
            total = total + w.lip_silhouette * lip_sil
            metrics["lip_silhouette"] = lip_sil
        if perceptual is not None:
            metrics["perceptual"] = perceptual(rgb, target)
            total = total + w.perceptual * metrics["perceptual"]
        refine = sum(jnp.mean((getattr(params, k) - batch[f"flame_{k}"][:, :getattr(params, k).shape[1]]) ** 2)
                     for k in REFINED_KEYS)
        total = total + w.refine * refine
        mse = jnp.mean((rgb - target) ** 2)
        metrics.update(position=position, scale=scale, lip_anchor=lip_anchor, refine=refine,
                       psnr=-10.0 * jnp.log10(mse), render_overflow=jnp.max(overflow),
                       opacity=jnp.mean(g.opacities), log_scale=jnp.mean(g.local_log_scales),
                       offset=jnp.mean(jnp.abs(g.local_means)))
        return total, metrics, (g.means, viewmat)

    return terms


def initial_colors(spec: AvatarSpec, frame: dict, task_cfg) -> np.ndarray:
    """Colour of every template Gaussian from one training frame: its anchor on the tracked
    mesh projected into the (composited) image, nearest pixel (occluded ones get the colour
    of what covers them; training corrects them)."""
    batch = {k: jnp.asarray(v[:1]) for k, v in frame.items()}
    out = flame_forward(spec.flame, tracked_params(batch, spec.flame.n_expr))
    anchors = bound_anchors(out.vertices, spec.flame.faces, jnp.asarray(spec.placement.face_ids),
                            jnp.asarray(spec.placement.barycentrics))
    pix = np.asarray(losses.project_points(anchors, batch["viewmat"], batch["K"]))[0]
    image = np.asarray(composite_target(batch, tuple(task_cfg.background)))[0]
    h, w = image.shape[:2]
    cols = np.clip(np.floor(pix[:, 0]), 0, w - 1).astype(int)
    rows = np.clip(np.floor(pix[:, 1]), 0, h - 1).astype(int)
    return np.clip(image[rows, cols], 0.02, 0.98).astype(np.float32)


def prepare(task_cfg) -> tuple[AvatarSpec, dict[str, np.ndarray]]:
    """Read the identity's training frames and build the spec (used by the task and CLI)."""
    from flashtalker_jax.data.vhap import read_vhap

    data_dir = Path(task_cfg.data)
    seq = read_vhap(data_dir)
    train = split_indices(seq, tuple(task_cfg.train_splits))
    audio = audio_frame_features(seq) if task_cfg.avatar.use_audio else None
    frames = load_frames(seq, train, task_cfg.resolution, audio)
    spec = build_spec(task_cfg, resolve_flame_dir(task_cfg, data_dir), seq.shape, seq.static_offset,
                      n_frames=len(train), n_cameras=int(seq.cameras.max()) + 1,
                      audio=frames.get("audio"))
    if task_cfg.init_colors_from_frame:
        spec = dataclasses.replace(spec, initial_colors=initial_colors(spec, frames, task_cfg))
    return spec, frames


def make_task(task_cfg: ml_collections.ConfigDict) -> Task:
    spec, frames = prepare(task_cfg)

    def make_data(process_index: int, process_count: int):
        return AdaptIterator(frames, task_cfg.batch_size, task_cfg.data_seed, task_cfg.refine_start,
                             process_index, process_count)

    return Task(make_model=make_model_factory(task_cfg, spec), loss_fn=make_loss_fn(task_cfg),
                make_data=make_data)


# ------------------------------------------------------------------ avatar folder

def _flat_state(model: nnx.Module) -> dict[str, np.ndarray]:
    from flashtalker_jax.train.state import key_path_str

    state = nnx.state(model)
    return {key_path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}


def export_avatar(model: AdaptModel, task_cfg, out_dir: Path) -> Path:
    """Write the self-contained avatar folder (module docstring) and return its path."""
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.utils.files import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flame_src = resolve_flame_dir(task_cfg, Path(task_cfg.data))
    shutil.copytree(flame_src, out_dir / "flame", dirs_exist_ok=True)
    seq = read_vhap(task_cfg.data)
    identity = {"shape": np.asarray(seq.shape, np.float32)}
    if seq.static_offset is not None:
        identity["static_offset"] = np.asarray(seq.static_offset, np.float32)
    with atomic_path(out_dir / "identity.npz") as tmp:
        np.savez(tmp, **identity)
    refinement = model.refinement
    meta = {"format_version": FORMAT_VERSION, "n_frames": int(refinement.expr.shape[0]), "n_cameras": int(refinement.camera.shape[0]),
            "audio_dim": int(model.audio_mean.shape[0]) if hasattr(model, "audio_mean") else 0}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    (out_dir / "config.json").write_text(task_cfg.to_json_best_effort(indent=1))
    with atomic_path(out_dir / "state.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **_flat_state(model))
    return out_dir


def load_avatar(avatar_dir) -> tuple[AdaptModel, ml_collections.ConfigDict]:
    """The trained AdaptModel and its task config from an avatar folder."""
    avatar_dir = Path(avatar_dir)
    for name in ("config.json", "meta.json", "identity.npz", "state.npz", "flame"):
        if not (avatar_dir / name).exists():
            raise ModelFileError(avatar_dir, f"not an avatar folder: {name} is missing",
                                 "point --avatar at RUN/avatar written by `flashtalker adapt`")
    meta = _read_meta(avatar_dir / "meta.json")
    task_cfg = ml_collections.ConfigDict(json.loads((avatar_dir / "config.json").read_text()))
    with np.load(avatar_dir / "identity.npz") as identity:
        shape = identity["shape"]
        static_offset = identity["static_offset"] if "static_offset" in identity else None
    audio = np.zeros((2, meta["audio_dim"]), np.float32) if meta["audio_dim"] else None
    spec = build_spec(task_cfg, avatar_dir / "flame", shape, static_offset, meta["n_frames"],
                      meta["n_cameras"], audio)
    model = make_model_factory(task_cfg, spec)(nnx.Rngs(0))
    with np.load(avatar_dir / "state.npz") as saved:
        stored = dict(saved)
    expected = _flat_state(model)
    if set(stored) != set(expected):
        raise ModelFileError(avatar_dir / "state.npz", "variables do not match the config "
                             f"({len(set(stored) ^ set(expected))} differ)")
    state = nnx.state(model)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    from flashtalker_jax.train.state import key_path_str

    new = [jnp.asarray(stored[key_path_str(p)]) for p, _ in leaves]
    nnx.update(model, jax.tree_util.tree_unflatten(treedef, new))
    return model, task_cfg


def _read_meta(path: Path) -> dict:
    """meta.json, refused unless its format_version is FORMAT_VERSION."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(path, f"unreadable avatar metadata ({err})",
                             "re-export the avatar with `flashtalker adapt`") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version is None:
        raise ModelFileError(path, "no format_version: the folder was written by an older "
                                   f"flashtalker (avatar format 1; this one reads {FORMAT_VERSION})",
                             "re-run `flashtalker adapt` (or `--resume` it from its checkpoints) "
                             "to write a current avatar folder")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(path, f"format_version {version!r} is newer than this flashtalker "
                                   f"reads ({FORMAT_VERSION})",
                             "upgrade flashtalker_jax to the version that wrote the avatar")
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"format_version {version} is no longer supported (this "
                                   f"flashtalker reads {FORMAT_VERSION})",
                             "re-run `flashtalker adapt` to write a current avatar folder")
    return meta
