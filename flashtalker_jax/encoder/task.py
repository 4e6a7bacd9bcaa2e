"""Training of the motion encoder (trainer task "motion_encoder").

Data: VHAP folders, each one identity: tracked real clips (`flashtalker track`: the targets
are the tracker's fit) and procedural identities (`flashtalker data synth`: the exact
parameters that rendered them). task.dataset lists folders separated by ","; each is one
identity folder or a folder of them. Every identity must use the task's FLAME model
(checked by the model file's sha256): codes only mean something in one model's space.

Per frame the targets are the motion code (expr, neck + jaw, eyes, camera code: the
head-to-camera transform as the crop shows it, encoder/camera_code.py) and per identity
its shape. A batch holds B windows of T consecutive frames of one identity each (T = 1 for
the per-frame encoder, T > 1 trains the temporal head) plus one other frame of the same
identity as the shape extractor's source.

Loss (GenFaceTalk: soft FLAME-code loss + camera transform loss, both lambda 5 at first):
  code       mean squared error of the normalised expr / neck+jaw / eyes codes + shape
  transform  mean squared error of the normalised camera code
  vertices   mean distance (mm) of the posed meshes (true shape, predicted motion vs
             target), through the frame's own camera: code errors weighted by what they
             move (100 expression components do not matter alike); ours, not the paper's
  image      GenFaceTalk's L1 (+ SSIM, + perceptual) of each identity's render posed by the
             predicted FLAME and camera code against the frame (task.loss.image > 0; the
             identities' Gaussians from a frozen e2v prior, task.image_prior:
             encoder/image_loss.py). Off by default.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flashtalker_jax.encoder.camera_code import from_camera_code, to_camera_code
from flashtalker_jax.encoder.model import MOTION_KEYS, MotionEncoder, motion_widths
from flashtalker_jax.errors import ConfigError, InputFileError, ModelFileError
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.render.camera import scale_intrinsics
from flashtalker_jax.train.tasks import Task

MM_PER_M = 1000.0
STD_FLOOR = 1e-3     # a constant target (the tracker's zero neck) keeps a unit-sized scale


@dataclasses.dataclass(frozen=True)
class Clip:
    """One identity's frames in time order: images (N, R, R, 3) uint8, motion (N, C) targets,
    viewmat (N, 4, 4), K (N, 3, 3) at R pixels, shape (S,), name; with the image loss
    also targets (N, s, s, 3) and masks (N, s, s) uint8 at s = task.image_resolution."""
    name: str
    images: np.ndarray
    motion: np.ndarray
    viewmat: np.ndarray
    K: np.ndarray
    shape: np.ndarray
    targets: np.ndarray | None = None
    masks: np.ndarray | None = None


def dataset_folders(spec: str) -> list[Path]:
    from flashtalker_jax.data.vhap import identity_folders

    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ConfigError("task.dataset is empty: pass --data DATASET (VHAP folders, comma-separated)")
    return [folder for part in parts for folder in identity_folders(part)]


def resolve_flame_file(flame: str, folders: list[Path]) -> Path:
    """The model pickle: `flame` (a file or folder) when given, else the first identity's
    (its flame/ or ../flame/)."""
    from flashtalker_jax.flame.loader import find_model_file

    candidates = [Path(flame)] if flame else [folders[0], folders[0].parent]
    for path in candidates:
        try:
            return find_model_file(path)
        except (FileNotFoundError, ModelFileError):
            continue
    raise ModelFileError(candidates[0], "no FLAME model found",
                         "pass --flame DIR (the model the identities were tracked / rendered with)")


def check_same_flame(flame_file: Path, folders: list[Path]) -> None:
    """Each identity that carries a FLAME model (its flame/ or ../flame/) carries this one."""
    from flashtalker_jax.utils.files import sha256_file

    want = sha256_file(flame_file)
    for folder in folders:
        for candidate in (folder / "flame" / flame_file.name, folder.parent / "flame" / flame_file.name):
            if candidate.is_file():
                if sha256_file(candidate) != want:
                    raise ConfigError(f"{folder}: its FLAME model {candidate} differs from {flame_file}; "
                                      "the encoder's codes live in one model's space: train on identities "
                                      "of one FLAME model (or pass --flame)")
                break


def fit_width(array: np.ndarray, width: int) -> np.ndarray:
    """Cut or zero-pad the last axis to `width` (a track with fewer components: the rest 0)."""
    array = array[..., :width]
    return np.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, width - array.shape[-1])])


def frame_params(flame: FlameModel, shape: np.ndarray, track: dict[str, np.ndarray]) -> FlameParams:
    """FlameParams of tracked frames (expr cut / padded to the model's) with the identity's shape."""
    params = FlameParams.from_track(track, n_expr=flame.n_expr)
    return params.replace(shape=jnp.broadcast_to(jnp.asarray(shape, jnp.float32), (params.batch, shape.shape[0])))


def motion_targets(flame: FlameModel, shape: np.ndarray, track: dict[str, np.ndarray],
                   viewmat: np.ndarray, K: np.ndarray, width: int) -> np.ndarray:
    """(N, C) motion code targets of tracked frames (MOTION_KEYS order)."""
    params = frame_params(flame, shape, track)
    camera = jax.jit(to_camera_code, static_argnums=4)(flame, params, jnp.asarray(viewmat),
                                                       jnp.asarray(K), width)
    return np.concatenate([np.asarray(params.expr), track["neck_pose"], track["jaw_pose"],
                           track["eyes_pose"], np.asarray(camera)], -1).astype(np.float32)


def load_clip(folder: Path, flame: FlameModel, task_cfg, splits: tuple[str, ...], mask_source: str = "") -> Clip:
    """One identity folder's frames of `splits`; mask_source ("fg" / "head", "" = none):
    also the image loss's targets and masks at task.image_resolution."""
    from flashtalker_jax.avatar.frames import load_masks, resize, split_indices
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(folder)
    if seq.width != seq.height:
        raise InputFileError(folder, f"frames are {seq.width}x{seq.height}; the encoder reads square crops")
    idx = np.sort(split_indices(seq, splits))
    r, s = int(task_cfg.resolution), int(task_cfg.image_resolution)
    images, targets = [], []
    for i in idx:   # each frame read once: the 512 px PNGs are most of the load time
        image = seq.load_image(i)
        images.append(resize(image, r))
        if mask_source:
            targets.append(resize(image, s))
    images = np.stack(images)
    images_loss = {"targets": np.stack(targets), "masks": load_masks(seq, idx, s, mask_source)} \
        if mask_source else {}
    K = scale_intrinsics(seq.K[idx].astype(np.float32), r / seq.width)
    viewmat = seq.w2c[idx].astype(np.float32)
    shape = fit_width(np.asarray(seq.shape, np.float32)[None], flame.n_shape)[0]
    track = {k: np.asarray(v[idx], np.float32) for k, v in seq.flame.items()}
    motion = motion_targets(flame, shape, track, viewmat, K, r)
    return Clip(folder.name, images, motion, viewmat, K, shape, **images_loss)


def load_flame(task_cfg, flame_file: Path) -> FlameModel:
    from flashtalker_jax.flame.loader import load_flame_model

    return load_flame_model(flame_file, n_shape=task_cfg.n_shape, n_expr=task_cfg.n_expr)


def load_clips(task_cfg, splits: tuple[str, ...], mask_source: str = "") -> tuple[FlameModel, Path, list[Clip]]:
    """mask_source: the e2v prior's ("head" / "fg") when the image loss is on, as it applies
    to each folder (e2v/task.identity_mask_source), else ""."""
    from flashtalker_jax.e2v.task import identity_mask_source

    folders = dataset_folders(task_cfg.dataset)
    flame_file = resolve_flame_file(task_cfg.flame, folders)
    check_same_flame(flame_file, folders)
    flame = load_flame(task_cfg, flame_file)
    return flame, flame_file, [load_clip(f, flame, task_cfg, splits,
                                         identity_mask_source(f, mask_source) if mask_source else "")
                               for f in folders]


def code_stats(clips: list[Clip], augment=None) -> dict[str, np.ndarray]:
    """Mean / std of the targets the model is trained on: with `augment` (task.augment) the
    camera code's position and log-scale spread also by the random shift and zoom (uniform
    ranges: variance a^2 / 3), or augmented targets would sit many stds out."""
    motion = np.concatenate([c.motion for c in clips])
    shape = np.stack([c.shape for c in clips])
    var = motion.var(0)
    if augment is not None:
        var[-3:-1] += augment.shift ** 2 / 3.0
        var[-1] += augment.log_zoom ** 2 / 3.0
    return {"motion_mean": motion.mean(0), "motion_std": np.maximum(np.sqrt(var), STD_FLOOR),
            "shape_mean": shape.mean(0), "shape_std": np.maximum(shape.std(0), STD_FLOOR)}


def make_encoder(task_cfg, stats: dict[str, np.ndarray], rngs) -> MotionEncoder:
    m = task_cfg.model
    return MotionEncoder(n_expr=task_cfg.n_expr, n_shape=task_cfg.n_shape, resolution=task_cfg.resolution,
                         widths=tuple(m.widths), feature=m.feature, hidden=m.hidden,
                         temporal_kernel=m.temporal_kernel, stats=stats, rngs=rngs)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Zoom about the crop centre, shift (fraction of the width), per-channel gain, offset."""
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: float = 0.0


def draw_augment(rng: np.random.Generator, cfg) -> Augment:
    if cfg is None:
        return Augment()
    return Augment(zoom=float(np.exp(rng.uniform(-cfg.log_zoom, cfg.log_zoom))),
                   shift=tuple(float(x) for x in rng.uniform(-cfg.shift, cfg.shift, 2)),
                   gain=tuple(float(x) for x in np.exp(rng.uniform(-cfg.log_gain, cfg.log_gain, 3))),
                   offset=float(rng.uniform(-cfg.offset, cfg.offset)))


def augment_images(images: np.ndarray, aug: Augment) -> np.ndarray:
    """(T, R, R, 3) uint8 -> the same frames zoomed, shifted (edge pixels repeated) and
    colour-changed: pixel p of the result shows the input at (p - c - shift R) / zoom + c."""
    from PIL import Image

    if aug == Augment():
        return images
    r = images.shape[1]
    c = r / 2.0
    dx, dy = aug.shift[0] * r, aug.shift[1] * r
    coeffs = (1 / aug.zoom, 0.0, c - (c + dx) / aug.zoom, 0.0, 1 / aug.zoom, c - (c + dy) / aug.zoom)
    out = []
    for frame in images:
        padded = np.pad(frame, ((r, r), (r, r), (0, 0)), mode="edge")   # no black borders
        moved = Image.fromarray(padded).transform((r, r), Image.Transform.AFFINE,
                                                  (coeffs[0], 0.0, coeffs[2] + r, 0.0, coeffs[4], coeffs[5] + r),
                                                  resample=Image.Resampling.BILINEAR)
        out.append(np.asarray(moved, np.float32) * np.asarray(aug.gain, np.float32) + 255.0 * aug.offset)
    return np.clip(np.round(np.stack(out)), 0, 255).astype(np.uint8)


def augment_motion(motion: np.ndarray, aug: Augment) -> np.ndarray:
    """Camera-code targets (the last CODE_SIZE columns: rotation, position, log-scale) of
    frames seen through augment_images: position' = zoom position + shift, scale x zoom."""
    out = motion.copy()
    out[:, -3:-1] = aug.zoom * motion[:, -3:-1] + np.asarray(aug.shift, np.float32)
    out[:, -1] = motion[:, -1] + np.log(aug.zoom)
    return out


class WindowIterator:
    """Endless batches of B windows of T consecutive frames (one identity each) and a source
    frame of the same identity. Row r of global step t comes from default_rng((seed, t))
    alone: resumable from the step, the same global batch on any process count.
    Keys: frames (b, T, R, R, 3) uint8, source (b, R, R, 3) uint8, motion (b, T, C),
    viewmat (b, T, 4, 4), K (b, T, 3, 3), shape (b, S); clips with image-loss targets add
    identity (b,) int32 (the clip's index), target (b, T, s, s, 3) and mask (b, T, s, s).
    `augment` (task.augment): each window gets one random zoom, shift and colour change,
    its camera-code targets moved to match (augment_motion); None = the frames as they are."""

    global_state = True

    def __init__(self, clips: list[Clip], window: int, global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1, augment=None):
        if global_batch_size % process_count:
            raise ConfigError(f"global batch {global_batch_size} must divide over {process_count} processes")
        short = [c.name for c in clips if len(c.images) < max(window, 2)]
        if short:
            raise InputFileError(Path(short[0]), f"fewer frames than the window ({window}) or a source pair")
        self._clips, self._window, self._batch, self._seed = clips, int(window), global_batch_size, int(seed)
        self._augment = augment
        self._local = global_batch_size // process_count
        self._offset = process_index * self._local
        self._step = 0

    def __iter__(self):
        return self

    def rows(self, step: int) -> list[tuple[int, int, int, Augment, Augment]]:
        """(clip, window start, source frame, window's and source's augmentation) of each
        global row of a step."""
        rng = np.random.default_rng((self._seed, step))
        out = []
        for _ in range(self._batch):
            c = int(rng.integers(len(self._clips)))
            n = len(self._clips[c].images)
            out.append((c, int(rng.integers(n - self._window + 1)), int(rng.integers(n)),
                        draw_augment(rng, self._augment), draw_augment(rng, self._augment)))
        return out

    def __next__(self) -> dict[str, np.ndarray]:
        rows = self.rows(self._step)[self._offset:self._offset + self._local]
        self._step += 1
        images_loss = self._clips[0].targets is not None
        keys = ("frames", "source", "motion", "viewmat", "K", "shape") + \
            (("identity", "target", "mask") if images_loss else ())
        parts = {k: [] for k in keys}
        for c, start, source, aug, source_aug in rows:
            clip, span = self._clips[c], slice(start, start + self._window)
            parts["frames"].append(augment_images(clip.images[span], aug))
            parts["source"].append(augment_images(clip.images[source][None], source_aug)[0])
            parts["motion"].append(augment_motion(clip.motion[span], aug))
            parts["viewmat"].append(clip.viewmat[span])
            parts["K"].append(clip.K[span])
            parts["shape"].append(clip.shape)
            if images_loss:
                parts["identity"].append(np.int32(c))
                parts["target"].append(clip.targets[span])
                parts["mask"].append(clip.masks[span])
        return {k: np.stack(v) for k, v in parts.items()}

    def get_state(self) -> dict:
        return {"step": self._step}

    def set_state(self, state: dict) -> None:
        self._step = int(state["step"])


def code_params(flame: FlameModel, parts: dict, shape: jax.Array, viewmat, K, width: int) -> FlameParams:
    """FlameParams of flat frames: shape (N, S), parts {expr, neck_pose, jaw_pose,
    eyes_pose, camera} (N, k), the camera code turned back through cameras (N, ...) whose
    K is in pixels of a `width`-wide crop."""
    n = shape.shape[0]
    params = FlameParams(shape=shape, expr=parts["expr"], rotation=jnp.zeros((n, 3)), neck_pose=parts["neck_pose"],
                         jaw_pose=parts["jaw_pose"], eyes_pose=parts["eyes_pose"], translation=jnp.zeros((n, 3)))
    return from_camera_code(flame, params, parts["camera"], viewmat, K, width)


def posed_vertices(flame: FlameModel, parts: dict, shape: jax.Array, viewmat, K, width: int) -> jax.Array:
    """(N, V, 3) world vertices of flat frames (code_params' arguments)."""
    from flashtalker_jax.flame.lbs import flame_forward

    return flame_forward(flame, code_params(flame, parts, shape, viewmat, K, width)).vertices


def make_loss_fn(task_cfg, flame: FlameModel, avatars=None):
    """loss_fn(encoder, batch, key) -> (loss, metrics) (module docstring); avatars: the
    identities' Gaussians (image_loss.IdentityAvatars) when the image loss is on."""
    from flashtalker_jax.encoder.image_loss import make_image_loss

    image_loss = None if avatars is None else make_image_loss(task_cfg, avatars)
    w = task_cfg.loss
    widths = motion_widths(task_cfg.n_expr)
    camera_cols = slice(sum(widths[k] for k in MOTION_KEYS[:-1]), None)
    width = int(task_cfg.resolution)

    def flat(x):
        return x.reshape((-1,) + x.shape[2:])

    def loss_fn(encoder: MotionEncoder, batch, key):
        del key
        frames = batch["frames"].astype(jnp.float32) / 255.0
        source = batch["source"].astype(jnp.float32) / 255.0
        motion, shape = encoder(frames, source)
        target = (batch["motion"] - encoder.motion_mean[...]) / encoder.motion_std[...]
        shape_target = (batch["shape"] - encoder.shape_mean[...]) / encoder.shape_std[...]
        err = (motion - target) ** 2
        code = jnp.mean(err[..., :camera_cols.start]) + jnp.mean((shape - shape_target) ** 2)
        transform = jnp.mean(err[..., camera_cols])
        t = motion.shape[1]
        true_shape = flat(jnp.repeat(batch["shape"][:, None], t, 1))
        pred, pred_shape = encoder.denormalise(flat(motion), shape)
        true, _ = encoder.denormalise(flat(target), shape)
        cams = (flat(batch["viewmat"]), flat(batch["K"]))
        dist = jnp.linalg.norm(posed_vertices(flame, pred, true_shape, *cams, width)
                               - posed_vertices(flame, true, true_shape, *cams, width), axis=-1)
        vertex_mm = jnp.mean(dist) * MM_PER_M
        total = w.code * code + w.transform * transform + w.vertices * vertex_mm
        metrics = {"code": code, "transform": transform, "vertex_mm": vertex_mm,
                   "jaw_deg": jnp.degrees(jnp.sqrt(jnp.mean(jnp.sum((pred["jaw_pose"] - true["jaw_pose"]) ** 2, -1))))}
        if image_loss is not None:
            rows = {"identity": jnp.repeat(batch["identity"], t), "viewmat": cams[0], "K": cams[1],
                    "target": flat(batch["target"]), "mask": flat(batch["mask"])}
            image, image_metrics = image_loss(pred, flat(jnp.repeat(pred_shape[:, None], t, 1)), rows)
            total = total + image
            metrics.update(image_metrics)
        return total, metrics

    return loss_fn


def start_from(task_cfg, flame_file: Path):
    """(CodeStats, flat weights) of task.init_encoder (a trained encoder folder) to start
    from: a temporal head fine-tuned on a per-frame encoder starts as exactly that encoder
    (its last layer is zero). ConfigError when the two configs build different layers."""
    from flashtalker_jax.avatar.export import flat_state
    from flashtalker_jax.encoder.folder import read_encoder

    source = read_encoder(task_cfg.init_encoder, flame_file)
    weights = flat_state(source.encoder)
    for key in ("n_expr", "n_shape", "resolution"):
        if source.task_cfg[key] != task_cfg[key]:
            raise ConfigError(f"task.init_encoder={task_cfg.init_encoder}: its task.{key} is "
                              f"{source.task_cfg[key]}, this run's {task_cfg[key]}: set the same")
    stats = {k: weights[f"{k}/value"] for k in ("motion_mean", "motion_std", "shape_mean", "shape_std")}
    return stats, weights


def with_weights(encoder: MotionEncoder, weights: dict[str, np.ndarray], source: str) -> MotionEncoder:
    """The encoder with every variable `weights` has (the rest, e.g. a new temporal head, as
    built). Leaf by leaf, so it also runs under nnx.eval_shape (the trainer's abstract state)."""
    from flax import nnx

    from flashtalker_jax.train.state import key_path_str

    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(encoder))
    own = {key_path_str(p): leaf for p, leaf in leaves}
    foreign = sorted(set(weights) - set(own))
    if foreign:
        raise ConfigError(f"task.init_encoder={source}: {len(foreign)} variables this model lacks "
                          f"(e.g. {foreign[0]}): its task.model differs")
    for key, value in weights.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ConfigError(f"task.init_encoder={source}: {key} has shape {value.shape}, this model "
                              f"{tuple(own[key].shape)}: its task.model differs")
    nnx.update(encoder, jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(weights[key_path_str(p)]) if key_path_str(p) in weights else leaf
                  for p, leaf in leaves]))
    return encoder


def make_task(task_cfg: ml_collections.ConfigDict) -> Task:
    from flashtalker_jax.encoder.image_loss import check_image_config, image_loss_on, load_identity_avatars

    avatars = None
    if image_loss_on(task_cfg):   # the prior first: its errors come before minutes of reading frames
        check_image_config(task_cfg)
        folders = dataset_folders(task_cfg.dataset)
        avatars = load_identity_avatars(task_cfg.image_prior, resolve_flame_file(task_cfg.flame, folders), folders)
    flame, flame_file, clips = load_clips(task_cfg, tuple(task_cfg.train_splits),
                                          avatars.mask_source if avatars else "")
    augment = task_cfg.augment if task_cfg.augment.enabled else None
    stats, weights = (code_stats(clips, augment), None) if not task_cfg.init_encoder else \
        start_from(task_cfg, flame_file)

    def make_model(rngs):
        encoder = make_encoder(task_cfg, stats, rngs)
        return encoder if weights is None else with_weights(encoder, weights, task_cfg.init_encoder)

    def make_data(process_index: int, process_count: int):
        return WindowIterator(clips, task_cfg.window, task_cfg.batch_size, task_cfg.data_seed,
                              process_index, process_count, augment)

    return Task(make_model=make_model, loss_fn=make_loss_fn(task_cfg, flame, avatars), make_data=make_data)
