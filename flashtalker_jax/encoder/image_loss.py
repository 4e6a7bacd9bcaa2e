"""GenFaceTalk's image losses through the renderer for the motion encoder (task.loss.image,
task.loss.perceptual; Eq. 15: L1 + 0.01 perceptual beside the code and transform losses).

The identities' Gaussians come from a FROZEN e2v prior (task.image_prior, `flashtalker
pretrain-e2v`): when the data loads, its generator predicts each training identity's UV
map once, from one reference frame (the identity's first training frame with its tracked
FLAME, shape and camera, at the prior's resolution, as its pretraining saw sources), read
at the prior's UV placement. Every identity shares that placement (it is built on the mean-shape
template and bound to faces), so the template values stack into (n_identities, N, ...)
arrays and a row gathers its identity's. The FLAME model is the unpersonalised one the
prior trained with (teeth, shape per row), so each row renders its identity's Gaussians
on the mesh of the ENCODER's prediction: its shape, expression, neck / jaw / eyes and the
camera code turned back through the frame's own camera (as eval-motion-encoder and
reenact do). Only the encoder trains; the gradient reaches it through the Gaussians'
positions and frames (local_to_world of the posed mesh) and the camera code.

Against: the frame composited on the prior's background with its head mask (a tracked
clip's head_masks/, a data-synth identity's fg masks: `identity_mask_source`), at
task.image_resolution pixels; the render draws the Gaussians on the same background.
Loss: loss.image * L1 + loss.image_ssim * (1 - SSIM) + loss.perceptual * LPIPS (LPIPS
only with weights given: avatar/losses.make_perceptual_loss). task.image_rows renders only
the first k frames of a batch (rows are drawn at random: a random subset) to bound cost.

Why a prior rather than per-identity adapted avatars: one frozen network covers every
identity the encoder trains on (and unseen ones for evaluation, `render_psnr`) at no
per-identity adaptation cost, and all identities share one placement, so the batch renders
in one rasterize call. Its renders are blurrier than adapted avatars' (posed by the tracked
parameters, 20-28 dB on held-out clips at 64 px: BENCHMARKS.md), which bounds what the
loss can see.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.flame.model import FRAME_KEYS, FlameParams
from flashtalker_jax.render.camera import scale_intrinsics


def image_loss_on(task_cfg) -> bool:
    """Whether any image term is weighted (each must then be >= 0)."""
    w = task_cfg.loss
    for key in ("image", "image_ssim", "perceptual"):
        if w[key] < 0:
            raise ConfigError(f"task.loss.{key}={w[key]} must be >= 0 (0 = off)")
    return w.image > 0 or w.image_ssim > 0 or w.perceptual > 0


def check_image_config(task_cfg) -> None:
    """ConfigError for an image loss that cannot run as asked (module docstring)."""
    if not task_cfg.image_prior:
        raise ConfigError("task.loss.image > 0 needs the identities' Gaussians: set task.image_prior=RUN "
                          "(an e2v prior of `flashtalker pretrain-e2v` on this FLAME model)")
    if task_cfg.augment.enabled:
        raise ConfigError("task.augment.enabled=True with task.loss.image > 0: augmentation moves and "
                          "recolours the crops, which the identity's render would not match; turn one off")
    if task_cfg.image_resolution < 16:   # SSIM (always computed, for its metric) has an 11 px window
        raise ConfigError(f"task.image_resolution={task_cfg.image_resolution} must be >= 16 (render size, px)")
    if task_cfg.image_rows < 0:
        raise ConfigError(f"task.image_rows={task_cfg.image_rows} must be >= 0 (0 = every frame of a batch)")


@dataclasses.dataclass(frozen=True)
class IdentityAvatars:
    """The identities' Gaussians (module docstring): geometry (the prior's FLAME model and
    placement), template {name: (n_identities, N, ...)}, the prior's background and render
    settings, and mask_source (the prior's: "head" or "fg")."""
    geometry: object
    template: dict[str, np.ndarray]
    background: tuple[float, float, float]
    render_cfg: ml_collections.ConfigDict
    mask_source: str


def prior_flame_dir(folder, flame_file: Path) -> Path:
    """The FLAME folder the prior trained with (its config's task.flame or DATASET/flame):
    ModelFileError naming that model when it is not `flame_file` (the encoder's), byte for
    byte: the encoder's codes would pose a head of another model."""
    from flashtalker_jax.e2v.task import resolve_flame_dir
    from flashtalker_jax.flame.loader import find_model_file
    from flashtalker_jax.utils.files import sha256_file

    cfg = folder.task_cfg
    flame_dir = resolve_flame_dir(cfg, Path(cfg.dataset))
    prior_file = find_model_file(flame_dir)
    if sha256_file(prior_file) != sha256_file(flame_file):
        raise ModelFileError(prior_file, f"is the FLAME model the prior {folder.path} was trained with, not the "
                                         f"encoder's {flame_file}", "use an e2v prior trained on the encoder's "
                                                                    "FLAME model (task.image_prior)")
    return flame_dir


def load_identity_avatars(prior_dir, flame_file: Path, folders: list[Path]) -> IdentityAvatars:
    """Each identity folder's Gaussians from the prior (module docstring), in `folders` order."""
    from flashtalker_jax.avatar.frames import load_frames, split_indices
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.e2v.prior import load_generator, read_prior
    from flashtalker_jax.e2v.task import build_geometry, identity_mask_source, predict

    folder = read_prior(prior_dir)
    cfg = folder.task_cfg
    geometry = build_geometry(cfg, prior_flame_dir(folder, flame_file))
    graphdef, state = nnx.split(load_generator(folder, geometry))
    background = tuple(float(x) for x in cfg.background)
    mask_source = cfg.get("mask_source", "fg")   # priors written before the option: fg

    @jax.jit
    def template_of(frame, shape, flame):
        # the unpersonalised model: the identity's shape per row, as pretraining. The FLAME
        # model is an argument: closed over, XLA would constant-fold its blendshapes (seconds)
        return predict(nnx.merge(graphdef, state), dataclasses.replace(geometry, flame=flame), frame, shape,
                       background)[1]

    maps = []
    for path in folders:
        seq = read_vhap(path)
        first = np.sort(split_indices(seq, tuple(cfg.train_splits)))[:1]
        frame = load_frames(seq, first, int(cfg.resolution), None, identity_mask_source(path, mask_source))
        values = template_of({k: jnp.asarray(v) for k, v in frame.items()},
                             jnp.asarray(seq.shape, jnp.float32)[None], geometry.flame)
        maps.append({k: np.asarray(v) for k, v in values.items()})
    template = {k: np.concatenate([m[k] for m in maps]) for k in maps[0]}
    return IdentityAvatars(geometry, template, background, cfg.render.copy_and_resolve_references(), mask_source)


def render_rows(avatars: IdentityAvatars, params: FlameParams, identity: jax.Array, viewmat: jax.Array,
                K: jax.Array, size: int) -> jax.Array:
    """(N, size, size, 3) renders of rows: identity (N,) int indexes the stacked template,
    params (N) posed on the prior's FLAME model, cameras (N, 4, 4) / (N, 3, 3) at `size` px."""
    from flashtalker_jax.e2v.task import render_gaussians

    chex.assert_rank(identity, 1)
    chex.assert_shape([viewmat, K], [(identity.shape[0], 4, 4), (identity.shape[0], 3, 3)])
    frame = {f"flame_{key}": getattr(params, key) for key in FRAME_KEYS}
    frame.update(viewmat=viewmat, K=K)
    template = {name: jnp.asarray(value)[identity] for name, value in avatars.template.items()}
    rgb, _ = render_gaussians(avatars.geometry, template, frame, params.shape, avatars.render_cfg, size,
                              avatars.background)
    return rgb


def make_image_loss(task_cfg, avatars: IdentityAvatars):
    """image_loss(parts, shape, batch_rows) -> (weighted image loss, metrics) (module
    docstring). parts: the encoder's denormalised codes {key: (N, k)} and shape (N, S) of N
    flat frames; rows: identity (N,), viewmat (N, 4, 4), K (N, 3, 3) at task.resolution,
    target (N, s, s, 3) and mask (N, s, s) uint8 at s = task.image_resolution."""
    from flashtalker_jax.avatar import losses
    from flashtalker_jax.avatar.frames import composite_target
    from flashtalker_jax.encoder.task import code_params

    w = task_cfg.loss
    perceptual = losses.make_perceptual_loss(w)
    width, size, keep = int(task_cfg.resolution), int(task_cfg.image_resolution), int(task_cfg.image_rows)

    def image_loss(parts: dict, shape: jax.Array, rows: dict):
        n = shape.shape[0] if keep == 0 else min(keep, shape.shape[0])
        parts, rows = ({k: v[:n] for k, v in d.items()} for d in (parts, rows))
        params = code_params(avatars.geometry.flame, parts, shape[:n], rows["viewmat"], rows["K"], width)
        rgb = render_rows(avatars, params, rows["identity"], rows["viewmat"], scale_intrinsics(rows["K"], size / width),
                          size)
        target = composite_target({"image": rows["target"], "mask": rows["mask"]}, avatars.background)
        total, photo = losses.photometric_loss(rgb, target, w.image, w.image_ssim)
        metrics = {"image_l1": photo["l1"], "image_d_ssim": photo["d_ssim"],
                   "image_psnr": -10.0 * jnp.log10(jnp.mean((rgb - target) ** 2))}
        if perceptual is not None:
            metrics["image_perceptual"] = perceptual(rgb, target)
            total = total + w.perceptual * metrics["image_perceptual"]
        return total, metrics

    return image_loss


def render_psnr(encoder_dirs: dict[str, str], data: str, prior_dir, splits: tuple[str, ...] | None,
                size: int = 64, batch: int = 32, keep: np.ndarray | None = None) -> list[dict]:
    """Per clip of `data` (comma-separated VHAP folders; splits None = all frames), each
    clip read once: the mean per-frame PSNR (dB, `psnr_<name>`) of the clip's identity, its
    Gaussians predicted by the prior from its first training frame, posed by each encoder
    of `encoder_dirs` {name: RUN} (its shape, codes and camera code through each frame's
    camera) against the frame on the prior's background with its mask, at `size` px; and
    `psnr_reference`: the same Gaussians posed by the folder's own parameters (the
    tracker's fit or the truth: what the prior's Gaussians allow). `keep`: frame rows whose
    images are returned (`target` and one per name: (k, size, size, 3) in [0, 1])."""
    from flashtalker_jax.avatar.frames import composite_target, load_masks, resize, split_indices
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.e2v.task import identity_mask_source
    from flashtalker_jax.encoder.folder import read_encoder
    from flashtalker_jax.encoder.predict import encode_clip
    from flashtalker_jax.encoder.task import code_params, dataset_folders, resolve_flame_file

    folders = dataset_folders(data)
    flame_file = resolve_flame_file("", folders)
    encoders = {name: read_encoder(path, flame_file).encoder for name, path in encoder_dirs.items()}
    avatars = load_identity_avatars(prior_dir, flame_file, folders)
    flame = avatars.geometry.flame
    render = jax.jit(functools.partial(render_rows, avatars, size=size))
    resolutions = sorted({e.resolution for e in encoders.values()})
    out = []
    for identity, path in enumerate(folders):
        seq = read_vhap(path)
        idx = np.arange(len(seq.image_paths)) if splits is None else np.sort(split_indices(seq, splits))
        crops, targets = {r: [] for r in resolutions}, []
        for i in idx:
            image = seq.load_image(i)
            for r in resolutions:
                crops[r].append(resize(image, r))
            targets.append(resize(image, size))
        masks = load_masks(seq, idx, size, identity_mask_source(path, avatars.mask_source))
        target = np.asarray(composite_target({"image": np.stack(targets), "mask": masks}, avatars.background))
        viewmat, K = jnp.asarray(seq.w2c[idx], jnp.float32), jnp.asarray(seq.K[idx], jnp.float32)
        n = len(idx)
        posed = {}
        for name, encoder in encoders.items():
            motion, shape = encode_clip(encoder, np.stack(crops[encoder.resolution]))
            posed[name] = code_params(flame, {k: jnp.asarray(v) for k, v in motion.items()},
                                      jnp.broadcast_to(jnp.asarray(shape), (n, len(shape))), viewmat, K, seq.width)
        track = {k: jnp.asarray(v[idx], jnp.float32) for k, v in seq.flame.items()}
        posed["reference"] = FlameParams.from_track(track, n_expr=flame.n_expr).replace(
            shape=jnp.broadcast_to(jnp.asarray(seq.shape, jnp.float32), (n, len(seq.shape))))
        K_render = scale_intrinsics(K, size / seq.width)
        row = {"clip": path.name, "frames": int(n)}
        for name, params in posed.items():
            rgb = []
            for start in range(0, n, batch):   # padded to one compiled shape
                rows = np.minimum(np.arange(start, start + batch), n - 1)
                chunk = jax.tree_util.tree_map(lambda x: x[rows], params)
                rgb.append(np.asarray(render(chunk, jnp.full(batch, identity, jnp.int32), viewmat[rows],
                                             K_render[rows]))[: min(batch, n - start)])
            rgb = np.concatenate(rgb)
            mse = np.mean((rgb - target) ** 2, axis=(1, 2, 3))
            row[f"psnr_{name}"] = float(np.mean(-10.0 * np.log10(mse)))
            if keep is not None:
                row[name] = rgb[keep]
        if keep is not None:
            row["target"] = target[keep]
        out.append(row)
    return out
