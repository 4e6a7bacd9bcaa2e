"""Per-identity adaptation as a trainer task ("avatar_adapt"), and the export of the trained
model as the avatar folder that later commands load.

Training frames drive the identity's FLAME mesh with their tracked parameters (plus the
per-frame refinements once `refine_start` is reached, `render_training_frames`); the
inference renderer (renderer.render: the avatar turns the posed mesh into Gaussians, the
rasterizer renders them with an extra lip channel) draws them, and the loss is
  w_l1 L1 + w_ssim (1 - SSIM)                              (photometric)
  + w_pos position + w_scale scale                         (binding regularisers)
  + w_lip_anchor lip anchoring + w_lip_sil lip silhouette  (lip-guided supervision)
  + w_refine mean squared refinement                       (keeps tracked params close)
  + w_perceptual LPIPS                                     (optional, user weights)
(see losses.py). With `densify.enabled` (per-face placement) the loss also feeds
binding-aware densification and pruning (densify.py, `_densifying_loss_fn`). Ground truth is composited on `background` with the tracked foreground
mask when `use_mask` is on, as the render is. Real footage (`render_over_frame`, configs/
adapt_real.py: the render is the head alone, composited into real frames at inference)
draws the head over a random colour per frame and compares with the masked frame over the
same colour (`train_background="random"`; "frame": over the frame itself), plus w_alpha
|alpha - head mask| (the mask of `mask_source`: "head" = head_masks/).

With task.prior.path (`flashtalker adapt --prior RUN`) the template starts from the e2v
prior's prediction for one training frame instead of the default initialisation
(e2v/init.py, `make_model_factory`'s template).

The trained model is written as an avatar folder (`export_avatar`, format in export.py);
`load_avatar` reads it back with its refinement tables, renderer.load_renderer without.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.avatar import densify, export, losses
from flashtalker_jax.avatar.adapt_data import AdaptIterator
from flashtalker_jax.avatar.adapt_model import REFINED_KEYS, AdaptModel, FrameRefinement
from flashtalker_jax.avatar.avatar import ViewProbe
from flashtalker_jax.avatar.binding import bound_anchors
from flashtalker_jax.avatar.frames import (audio_frame_features, composite_target, load_frames,
                                           over_frame, split_indices)
from flashtalker_jax.avatar.renderer import (AvatarRenderer, AvatarSpec, RenderResult,
                                             RenderSettings, build_spec, gaussian_avatar, render)
from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import find_model_file
from flashtalker_jax.flame.model import FlameParams
from flashtalker_jax.train.tasks import Task


def resolve_flame_dir(task_cfg, data_dir: Path) -> Path:
    path = Path(task_cfg.flame) if task_cfg.flame else data_dir / "flame"
    if not path.exists():
        raise ModelFileError(path, "FLAME model folder not found",
                             "pass --flame DIR (a folder with generic_model.pkl, FLAME_texture.npz "
                             "and FLAME_masks.pkl) or put it at DATA/flame")
    return find_model_file(path).parent


def make_model_factory(task_cfg, spec: AvatarSpec, template: dict[str, np.ndarray] | None = None):
    """make_model(rngs) -> a fresh AdaptModel; `template` {name: (N, ...)} (a prior's
    prediction, e2v/init.py) replaces those template values of the first N Gaussians."""
    def make_model(rngs: nnx.Rngs) -> AdaptModel:
        avatar = gaussian_avatar(task_cfg, spec, rngs)
        if spec.initial_colors is not None:
            logits = np.log(spec.initial_colors / (1 - spec.initial_colors))
            full = np.zeros((avatar.capacity, 3), np.float32)
            full[:len(logits)] = logits
            avatar.color_logits[...] = jnp.asarray(full) / avatar.lr_scale["color_logits"]
        for name, value in (template or {}).items():   # stored divided by the group's lr scale
            stored = getattr(avatar, name)
            stored[...] = stored[...].at[:len(value)].set(jnp.asarray(value) / avatar.lr_scale[name])
        # Avatar folders written before `refine_centered` existed trained uncentred.
        refinement = FrameRefinement(spec.n_frames, spec.n_cameras, spec.flame.n_expr,
                                     task_cfg.refine_lr_scale, task_cfg.get("refine_centered", False))
        return AdaptModel(avatar, spec, refinement)

    return make_model


def render_training_frames(model: AdaptModel, batch,
                           settings: RenderSettings) -> tuple[RenderResult, FlameParams, jax.Array]:
    """(RenderResult, refined FlameParams, refined viewmat) of a training batch: tracked
    parameters and cameras plus the frames' refinements, through renderer.render."""
    n_expr = model.flame.expr_dirs.shape[-1]
    tracked = FlameParams.from_track(batch, prefix="flame_", n_expr=n_expr)
    params = model.refinement.apply(tracked, batch["slot"], batch["refine"])
    viewmat = model.refinement.viewmat(batch["viewmat"], batch["camera"], batch["refine"])
    result = render(AvatarRenderer(model, settings), params, viewmat, batch["K"], batch.get("audio"))
    return result, params, viewmat


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
    settings = RenderSettings.from_config(task_cfg)
    background, size = settings.background, settings.size
    perceptual = losses.make_perceptual_loss(w)

    over_real_frame = task_cfg.get("render_over_frame", False)
    if over_real_frame and any(background):
        raise ConfigError("task.render_over_frame: the render must be the head alone: set "
                          "task.background=(0.0, 0.0, 0.0)")
    random_background = over_real_frame and task_cfg.get("train_background", "frame") == "random"

    def terms(model: AdaptModel, batch):
        result, params, viewmat = render_training_frames(model, batch, settings)
        rgb, lip, g, out, overflow = result[:5]
        if random_background:
            # The head over a random colour per frame, the masked frame over the same colour:
            # any coverage error shows (over the frame itself a see-through head is free
            # wherever the frame behind it is the right colour, e.g. eyes and lips).
            colour = batch["background"][:, None, None, :]
            rgb = rgb + (1.0 - result.alpha[..., None]) * colour
            mask = batch["mask"].astype(jnp.float32)[..., None] / 255.0
            target = batch["image"] / 255.0 * mask + colour * (1.0 - mask)
        elif over_real_frame:
            # The head over the frame itself (torso and background are the frame's).
            rgb, target = over_frame(rgb, result.alpha, batch), batch["image"] / 255.0
        elif task_cfg.use_mask:
            target = composite_target(batch, background)
        else:
            target = batch["image"] / 255.0
        photo, metrics = losses.photometric_loss(rgb, target, w.l1, w.ssim)
        active = model.avatar.active[...]
        limit = losses.scale_limits(model.avatar.init_scale[...], w.scale_threshold,
                                    w.scale_limit_factor)
        position, scale = losses.binding_regularizers(g.local_means, g.local_log_scales, active,
                                                      w.position_threshold, limit)
        lip_anchor = losses.lip_anchor_loss(g.local_means, model.is_lip[...] & active)
        total = photo + w.position * position + w.scale * scale + w.lip_anchor * lip_anchor
        if w.get("alpha", 0.0) > 0:
            # The head's coverage should be its mask: over a real frame the photometric
            # term alone cannot see a head that lets the (identical) frame show through.
            metrics["alpha"] = jnp.mean(jnp.abs(result.alpha - batch["mask"].astype(jnp.float32) / 255.0))
            total = total + w.alpha * metrics["alpha"]
        if w.lip_silhouette > 0:
            region = losses.lip_region_target(out.landmarks, viewmat, batch["K"], size, size)
            lip_sil = losses.lip_silhouette_loss(lip, region)
            total = total + w.lip_silhouette * lip_sil
            metrics["lip_silhouette"] = lip_sil
        if perceptual is not None:
            metrics["perceptual"] = perceptual(rgb, target)
            total = total + w.perceptual * metrics["perceptual"]
        tracked = FlameParams.from_track(batch, prefix="flame_", n_expr=params.expr.shape[1])
        refine = sum(jnp.mean((getattr(params, k) - getattr(tracked, k)) ** 2) for k in REFINED_KEYS)
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
    out = flame_forward(spec.flame, FlameParams.from_track(batch, prefix="flame_", n_expr=spec.flame.n_expr))
    anchors = bound_anchors(out.vertices, spec.flame.faces, jnp.asarray(spec.placement.face_ids),
                            jnp.asarray(spec.placement.barycentrics))
    pix = np.asarray(losses.project_points(anchors, batch["viewmat"], batch["K"]))[0]
    if task_cfg.get("render_over_frame", False):
        image = np.asarray(batch["image"][0], np.float32) / 255.0  # the frame itself
    else:
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
    frames = load_frames(seq, train, task_cfg.resolution, audio, task_cfg.get("mask_source", "fg"))
    spec = build_spec(task_cfg, resolve_flame_dir(task_cfg, data_dir), seq.shape, seq.static_offset,
                      n_frames=len(train), n_cameras=int(seq.cameras.max()) + 1,
                      audio=frames.get("audio"))
    if task_cfg.init_colors_from_frame:
        spec = dataclasses.replace(spec, initial_colors=initial_colors(spec, frames, task_cfg))
    return spec, frames


def make_task(task_cfg: ml_collections.ConfigDict) -> Task:
    spec, frames = prepare(task_cfg)
    template = None
    if task_cfg.prior.path:   # GGTalker's prior-initialised adaptation (e2v/init.py)
        from flashtalker_jax.e2v.init import prior_template

        template = prior_template(task_cfg, spec, resolve_flame_dir(task_cfg, Path(task_cfg.data)))

    def make_data(process_index: int, process_count: int):
        return AdaptIterator(frames, task_cfg.batch_size, task_cfg.data_seed, task_cfg.refine_start,
                             process_index, process_count,
                             random_background=task_cfg.get("render_over_frame", False)
                             and task_cfg.get("train_background", "frame") == "random")

    return Task(make_model=make_model_factory(task_cfg, spec, template), loss_fn=make_loss_fn(task_cfg),
                make_data=make_data)


# ------------------------------------------------------------------ avatar folder

def export_avatar(model: AdaptModel, task_cfg, out_dir: Path, camera: int = 0) -> Path:
    """Write the self-contained avatar folder (export.py) and return its path: the model,
    the identity, a copy of its FLAME folder, and the replay camera's view and pose track
    (`camera`'s frames of task.data), so that no later command needs the training data.
    config.json records task.data (and task.flame) resolved to absolute paths."""
    from flashtalker_jax.data.vhap import read_vhap

    data_dir = Path(task_cfg.data)
    seq = read_vhap(data_dir)
    identity = {"shape": np.asarray(seq.shape, np.float32)}
    if seq.static_offset is not None:
        identity["static_offset"] = np.asarray(seq.static_offset, np.float32)
    refinement = model.refinement
    meta = {"n_frames": int(refinement.expr.shape[0]), "n_cameras": int(refinement.camera.shape[0]),
            "audio_dim": model.audio_dim, "camera": int(camera), "fps": float(seq.fps)}
    flame_dir = resolve_flame_dir(task_cfg, data_dir)
    saved_cfg = task_cfg.copy_and_resolve_references()
    saved_cfg.data = str(data_dir.resolve())
    if task_cfg.flame:
        saved_cfg.flame = str(Path(task_cfg.flame).resolve())
    return export.write_avatar_folder(out_dir, saved_cfg, flame_dir, identity, meta,
                                      export.flat_state(model), export.replay_view(seq, camera),
                                      export.replay_track(seq, camera))


def load_avatar(avatar_dir) -> tuple[AdaptModel, ml_collections.ConfigDict]:
    """The trained AdaptModel (refinement tables included) and its task config from an
    avatar folder; renderer.load_renderer loads what inference needs."""
    folder = export.read_avatar_folder(avatar_dir)
    meta = folder.meta
    audio = np.zeros((2, meta["audio_dim"]), np.float32) if meta["audio_dim"] else None
    spec = build_spec(folder.task_cfg, folder.path / "flame", folder.shape, folder.static_offset,
                      meta["n_frames"], meta["n_cameras"], audio)
    model = make_model_factory(folder.task_cfg, spec)(nnx.Rngs(0))
    export.restore_state(model, folder)
    return model, folder.task_cfg
