"""Source-target training of the Identity-Gaussian Generator (trainer task "e2v_prior").

GGTalker's self-supervision without multi-view data: two frames of one identity; the
source image (with its tracked mesh and camera, for the UV unwrap, generator.py) predicts
the UV Gaussian map; the map is read at the avatar's UV placement, the Gaussians bound to
the identity's FLAME mesh driven by the TARGET's tracked expression, pose and camera, and
rendered by the same rasterize call as avatar/renderer.render (no deformer: its untrained
last layer is zero, so a one-shot avatar renders exactly these Gaussians). Loss against
the target frame (composited on `background` with its mask, as adaptation does):
  l1 L1 + ssim (1 - SSIM)  + offset mean |mu_local|^2 (GGTalker's L_mu)
  + scale GaussianAvatars scale regulariser + perceptual LPIPS (only with weights given).

Data: every identity folder of the dataset (data synth output) shares one FLAME model
(DATASET/flame); each identity has its own shape (canonical_flame_param.npz), passed per
row as FlameParams.shape to the unpersonalised model. Frames of the chosen identities are
held in memory, or, when DATASET is a `data build-tfds` output (DATASET/flame inside), read
per pair through grain (e2v/records.py: the same batches, memory flat in the set's size).
`PairIterator` draws pairs from (data_seed, step) alone: deterministic, resumable from its
step, and the global batch is the same on any process count.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.avatar import losses
from flashtalker_jax.avatar.binding import local_to_world
from flashtalker_jax.avatar.frames import composite_target, load_frames, split_indices
from flashtalker_jax.avatar.renderer import build_spec
from flashtalker_jax.avatar.sampling import Placement
from flashtalker_jax.data.vhap import has_head_masks
from flashtalker_jax.e2v.generator import (IdentityGaussianGenerator, avatar_parameters, build_chart,
                                           initial_log_scale, placement_uv, sample_at_placement)
from flashtalker_jax.errors import ConfigError, InputFileError, ModelFileError
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import find_model_file, load_flame_model, load_uv_layout
from flashtalker_jax.flame.model import FRAME_KEYS, FlameModel, FlameParams
from flashtalker_jax.render.rasterize import rasterize
from flashtalker_jax.train.tasks import Task

SIDES = ("src", "tgt")


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What the generator and the render need besides the frames: the shared FLAME model
    (with teeth, shape components kept), the placement (built on the mean-shape template),
    UV coordinates (N_uv, 2) of its UV Gaussians and their initial log-scale (N,)."""
    flame: FlameModel
    placement: Placement
    uv: np.ndarray
    init_log_scale: np.ndarray
    vt: np.ndarray
    ft: np.ndarray


def resolve_flame_dir(task_cfg, dataset: Path) -> Path:
    path = Path(task_cfg.flame) if task_cfg.flame else dataset / "flame"
    if not path.exists():
        raise ModelFileError(path, "FLAME model folder not found",
                             "pass --flame DIR or put the dataset's shared FLAME model at DATASET/flame")
    return find_model_file(path).parent


def build_geometry(task_cfg, flame_dir: Path) -> Geometry:
    """The Geometry of a FLAME folder under the task's placement and generator settings."""
    if task_cfg.placement.mode != "uv":
        raise ConfigError(f"task.placement.mode={task_cfg.placement.mode!r}: the UV map is read at "
                          "UV-placed Gaussians, use 'uv'")
    flame = load_flame_model(flame_dir, with_teeth=True)
    spec = build_spec(task_cfg, flame_dir, np.zeros(0, np.float32), None, n_frames=1, n_cameras=1)
    vt, ft = load_uv_layout(flame_dir)
    log_scale = initial_log_scale(spec.placement, np.asarray(spec.flame.v_template),
                                  np.asarray(spec.flame.faces), task_cfg.generator.init_scale_factor)
    return Geometry(flame, spec.placement, placement_uv(spec.placement, vt, ft), log_scale, vt, ft)


def _uv_unet(task_cfg, chart, faces, rngs):
    g = task_cfg.generator
    return IdentityGaussianGenerator(chart, faces, image_width=g.image_width, unet_width=g.unet_width,
                                     pos_dim=g.pos_dim, image_stride=g.image_stride,
                                     offset_scale=g.offset_scale, init_opacity=g.init_opacity, rngs=rngs)


def _genfacetalk(task_cfg, chart, faces, rngs):
    from flashtalker_jax.e2v.identity_encoder import GenFaceTalkIdentityGenerator

    g = task_cfg.generator   # a prior saved before token_rank existed has none: 0, its form
    if task_cfg.resolution % g.image_stride:
        raise ConfigError(f"task.resolution={task_cfg.resolution} must divide by task.generator.image_stride="
                          f"{g.image_stride}")
    return GenFaceTalkIdentityGenerator(chart, faces, image_resolution=task_cfg.resolution // g.image_stride,
                                        widths=tuple(g.id_widths), feature=g.id_feature, texel_dim=g.texel_dim,
                                        width=g.mlp_width, token_rank=g.get("token_rank", 0),
                                        image_stride=g.image_stride,
                                        offset_scale=g.offset_scale, init_opacity=g.init_opacity, rngs=rngs)


# task.generator.kind -> builder (task_cfg, chart, faces, rngs): GGTalker's UV U-Net
# (generator.py) or GenFaceTalk's identity learning (identity_encoder.py); same map out.
GENERATORS = {"uv_unet": _uv_unet, "genfacetalk": _genfacetalk}


def generator_kind(task_cfg) -> str:
    """task.generator.kind; a config saved before the option (a prior folder's) is "uv_unet"."""
    kind = task_cfg.generator.get("kind", "uv_unet")
    if kind not in GENERATORS:
        raise ConfigError(f"task.generator.kind={kind!r}: use one of {sorted(GENERATORS)}")
    return kind


def make_generator(task_cfg, geometry: Geometry, rngs: nnx.Rngs) -> IdentityGaussianGenerator:
    """The task's generator (task.generator.kind) on the geometry's UV chart."""
    chart = build_chart(geometry.vt, geometry.ft, task_cfg.generator.map_resolution)
    return GENERATORS[generator_kind(task_cfg)](task_cfg, chart, np.asarray(geometry.flame.faces), rngs)


# ------------------------------------------------------------------ data

def load_identities(task_cfg) -> tuple[list[Path], dict[str, np.ndarray]]:
    """(identity folders, frames) of the chosen identities: load_frames arrays of every
    train-split frame stacked, plus `identity` (M,) int32 and `shape` (M, S) float32."""
    from flashtalker_jax.data.vhap import identity_folders, read_vhap

    folders = identity_folders(task_cfg.dataset)
    stop = None if task_cfg.max_identities < 0 else task_cfg.identity_start + task_cfg.max_identities
    folders = folders[task_cfg.identity_start:stop]
    if not folders:
        raise InputFileError(task_cfg.dataset, f"no identities in [{task_cfg.identity_start}, {stop})",
                             "check task.identity_start / task.max_identities")
    parts = []
    for i, folder in enumerate(folders):
        seq = read_vhap(folder)
        idx = split_indices(seq, tuple(task_cfg.train_splits))
        if len(idx) < 2:
            raise InputFileError(folder, f"{len(idx)} training frame(s): a pair needs two")
        frames = load_frames(seq, idx, task_cfg.resolution, None, identity_mask_source(folder, task_cfg.mask_source))
        frames["identity"] = np.full(len(idx), i, np.int32)
        frames["shape"] = np.repeat(np.asarray(seq.shape, np.float32)[None], len(idx), 0)
        parts.append(frames)
    pad_components(parts, ("shape", "flame_expr"))
    keys = ("image", "mask", "viewmat", "K", "shape", "identity") + tuple(f"flame_{k}" for k in FRAME_KEYS)
    return folders, {k: np.concatenate([p[k] for p in parts]) for k in keys}


def pad_components(parts: list[dict[str, np.ndarray]], keys: tuple[str, ...]) -> None:
    """Zero-pad each key's (N, k) arrays to the widest k over the identities, in place: a
    synthetic identity with 100 expression coefficients beside a tracked one with 50; a
    zero coefficient changes no vertex, so padding is exact."""
    for key in keys:
        width = max(p[key].shape[1] for p in parts)
        for p in parts:
            p[key] = np.pad(p[key], ((0, 0), (0, width - p[key].shape[1])))


def identity_mask_source(folder: Path, mask_source: str) -> str:
    """load_frames' mask source for one identity folder. "head" (the prior renders a head,
    so a tracked real clip's fg mask, which holds the torso, would ask it to paint the
    shirt): the folder's head_masks/ of `track`; a data-synth folder has none, and its fg
    masks are head masks already (its renders hold only the head)."""
    folder = Path(folder)
    if mask_source != "head" or has_head_masks(folder):
        return mask_source
    if (folder / "identity.json").is_file():   # written by `flashtalker data synth`
        return "fg"
    raise InputFileError(folder, "task.mask_source='head' but the folder has no head_masks/ and is not a "
                                 "data-synth identity", "track the clip with `flashtalker track` (it writes "
                                                        "head_masks/) or use task.mask_source='fg'")


class PairIterator:
    """Endless batches of (source, target) frame pairs of one identity each.

    Global batch row r of step t comes from np.random.default_rng((seed, t)): an identity,
    then two distinct frames of it. This process takes rows [i * B / n, (i + 1) * B / n).
    Keys: src_<k> and tgt_<k> for each frame array k, and shape (B, S). State {"step"}:
    the same on every process (global_state), so resume is exact on any process count."""

    global_state = True

    def __init__(self, frames: dict[str, np.ndarray], global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1):
        if global_batch_size % process_count:
            raise ConfigError(f"global batch {global_batch_size} must divide over {process_count} processes")
        self._frames = frames
        ids = frames["identity"]
        self._rows_of = [np.flatnonzero(ids == i) for i in range(int(ids.max()) + 1)]
        self._batch, self._seed = global_batch_size, int(seed)
        self._local = global_batch_size // process_count
        self._offset = process_index * self._local
        self._step = 0

    def __iter__(self):
        return self

    def pairs(self, step: int) -> np.ndarray:
        """(B, 2) global (source, target) frame rows of a step."""
        rng = np.random.default_rng((self._seed, step))
        out = np.empty((self._batch, 2), np.int64)
        for r in range(self._batch):
            rows = self._rows_of[rng.integers(len(self._rows_of))]
            out[r] = rng.choice(rows, 2, replace=False)
        return out

    def __next__(self) -> dict[str, np.ndarray]:
        pairs = self.pairs(self._step)[self._offset:self._offset + self._local]
        self._step += 1
        batch = {"shape": self._frames["shape"][pairs[:, 1]]}
        for side, rows in zip(SIDES, pairs.T):
            for key, value in self._frames.items():
                if key not in ("shape", "identity"):
                    batch[f"{side}_{key}"] = value[rows]
        return batch

    def get_state(self) -> dict:
        return {"step": self._step}

    def set_state(self, state: dict) -> None:
        self._step = int(state["step"])


# ------------------------------------------------------------------ model and loss

def side(batch, name: str) -> dict:
    """The batch's arrays of one side ("src"/"tgt") without the prefix."""
    prefix = name + "_"
    return {k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix)}


def flame_params(frame: dict, shape: jax.Array, n_expr: int) -> FlameParams:
    return FlameParams.from_track(frame, prefix="flame_", n_expr=n_expr).replace(shape=shape)


def predict(generator: IdentityGaussianGenerator, geometry: Geometry, frame: dict, shape: jax.Array,
            background) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(UV map (B, R, R, 14), avatar template values {name: (B, N, ...)}) from source frames
    (load_frames arrays) and their identities' shapes (B, S)."""
    image = composite_target(frame, background)
    vertices = flame_forward(geometry.flame, flame_params(frame, shape, geometry.flame.n_expr)).vertices
    uv_map = generator(image, vertices, frame["viewmat"], frame["K"])
    samples = sample_at_placement(uv_map, jnp.asarray(geometry.uv))
    return uv_map, avatar_parameters(samples, jnp.asarray(geometry.init_log_scale),
                                     generator.init_opacity_logit)


def render_gaussians(geometry: Geometry, params: dict[str, jax.Array], frame: dict, shape: jax.Array,
                     render_cfg, size: int, background) -> tuple[jax.Array, dict]:
    """(rgb (B, S, S, 3), world Gaussians) of predicted template values bound to the
    identity's mesh posed by the frames' tracked parameters, seen by their cameras."""
    flame, pl = geometry.flame, geometry.placement
    vertices = flame_forward(flame, flame_params(frame, shape, flame.n_expr)).vertices
    means, scales, quats = local_to_world(vertices, flame.faces, jnp.asarray(pl.face_ids),
                                          jnp.asarray(pl.barycentrics), params["local_means"],
                                          params["local_log_scales"], params["local_quats"])
    b = means.shape[0]
    image = rasterize(means, quats, scales, jax.nn.sigmoid(params["opacity_logits"]),
                      jax.nn.sigmoid(params["color_logits"]), frame["viewmat"], frame["K"], size, size,
                      background=jnp.broadcast_to(jnp.asarray(background, jnp.float32), (b, 3)),
                      backend=render_cfg.backend, capacity=render_cfg.intersections_per_gaussian * pl.count,
                      per_tile=render_cfg.per_tile, tile_chunk=render_cfg.tile_chunk)
    return image.rgb, {"means": means, "scales": scales}


def make_loss_fn(task_cfg, geometry: Geometry):
    """loss_fn(generator, batch, key) -> (loss, metrics) (module docstring); key unused."""
    w = task_cfg.loss
    background = tuple(task_cfg.background)
    perceptual = losses.make_perceptual_loss(w)
    init_scale = jnp.exp(jnp.asarray(geometry.init_log_scale))
    active = jnp.ones(geometry.placement.count, bool)

    def loss_fn(generator: IdentityGaussianGenerator, batch, key):
        del key
        src, tgt, shape = side(batch, "src"), side(batch, "tgt"), batch["shape"]
        chex.assert_rank(shape, 2)
        _, params = predict(generator, geometry, src, shape, background)
        rgb, _ = render_gaussians(geometry, params, tgt, shape, task_cfg.render, task_cfg.resolution,
                                  background)
        target = composite_target(tgt, background)
        photo, metrics = losses.photometric_loss(rgb, target, w.l1, w.ssim)
        offset = jnp.mean(jnp.sum(params["local_means"] ** 2, -1))
        limit = losses.scale_limits(init_scale, w.scale_threshold, w.scale_limit_factor)
        _, scale = losses.binding_regularizers(params["local_means"], params["local_log_scales"], active,
                                               1.0, limit)
        total = photo + w.offset * offset + w.scale * scale
        if perceptual is not None:
            metrics["perceptual"] = perceptual(rgb, target)
            total = total + w.perceptual * metrics["perceptual"]
        metrics.update(offset=offset, scale=scale, psnr=-10.0 * jnp.log10(jnp.mean((rgb - target) ** 2)),
                       opacity=jnp.mean(jax.nn.sigmoid(params["opacity_logits"])))
        return total, metrics

    return loss_fn


def make_task(task_cfg: ml_collections.ConfigDict) -> Task:
    if not task_cfg.dataset:
        raise ConfigError("task.dataset is empty: pass --data DATASET (a folder of identity folders or a "
                          "`data build-tfds` output)")
    from flashtalker_jax.e2v import records   # imports this module

    dataset = Path(task_cfg.dataset)
    geometry = build_geometry(task_cfg, resolve_flame_dir(task_cfg, dataset))
    if records.is_built(dataset):
        make_data = records.make_record_data(task_cfg)
    else:
        _, frames = load_identities(task_cfg)

        def make_data(process_index: int, process_count: int):
            return PairIterator(frames, task_cfg.batch_size, task_cfg.data_seed, process_index, process_count)

    return Task(make_model=lambda rngs: make_generator(task_cfg, geometry, rngs),
                loss_fn=make_loss_fn(task_cfg, geometry), make_data=make_data)
