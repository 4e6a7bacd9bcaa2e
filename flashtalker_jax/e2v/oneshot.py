"""One-shot avatars (`flashtalker oneshot`): one frame + the prior -> an ordinary avatar folder.

The prior's generator predicts the UV Gaussian map from the frame, the map is read at the
identity's UV placement, and the values become the template of a fresh GaussianAvatar
(configs/adapt_flashtalker.py's avatar, the prior's placement / resolution / render
settings, no audio token). Its deformer and colour MLP are untrained with zero last
layers, so the avatar renders exactly the predicted Gaussians on the tracked FLAME mesh:
expression and pose come from FLAME, as in pretraining. The folder is written by
adapt.export_avatar (avatar/export.py format), so speak, eval-avatar and
`adapt`-style loading read it like any adapted avatar (its refinement table has one row).

Simplification of this slice: the frame's FLAME shape, expression, pose and camera are
those tracked in a VHAP folder of the identity (--data); the image is one of its frames
(a frame index, or the path of one of its images). The full version tracks the one image
with `flashtalker track` first (left).
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.adapt import export_avatar, make_model_factory
from flashtalker_jax.avatar.frames import load_frames
from flashtalker_jax.avatar.renderer import build_spec
from flashtalker_jax.data.vhap import has_head_masks
from flashtalker_jax.e2v.init import spec_geometry, template_predictor
from flashtalker_jax.e2v.prior import load_generator, read_prior
from flashtalker_jax.e2v.task import identity_mask_source
from flashtalker_jax.errors import InputFileError, ModelFileError
from flashtalker_jax.flame.loader import find_model_file


def find_flame_dir(data_dir: Path, flame: str | None) -> Path:
    """--flame, else DATA/flame, else the dataset's shared DATA/../flame (data synth layout)."""
    candidates = [Path(flame)] if flame else [data_dir / "flame", data_dir.parent / "flame"]
    for path in candidates:
        if path.exists():
            return find_model_file(path).parent
    raise ModelFileError(candidates[0], "FLAME model folder not found", "pass --flame DIR")


def frame_index(seq, image: str) -> int:
    """Row of `image` in the VHAP folder: an integer frame row, or one of its image files."""
    if image.isdigit():
        index = int(image)
        if index >= len(seq):
            raise InputFileError(seq.root, f"frame {index} asked, the folder has {len(seq)}")
        return index
    wanted = Path(image).resolve()
    for i, path in enumerate(seq.image_paths):
        if Path(path).resolve() == wanted:
            return i
    raise InputFileError(image, "not a frame of the --data folder: this slice takes the frame's FLAME "
                                "parameters and camera from its tracking",
                         "pass a frame index or one of DATA/images/*; tracking a single image "
                         "(`flashtalker track` on it) is not wired into oneshot yet")


def avatar_task_config(prior_cfg, data_dir: Path, flame_dir: Path):
    """The avatar folder's task config: adapt_flashtalker's with the prior's sizes."""
    from flashtalker_jax.config import load_config

    cfg = load_config("adapt_flashtalker").task
    cfg.data, cfg.flame = str(data_dir), str(flame_dir)
    cfg.resolution = prior_cfg.resolution
    cfg.background = tuple(prior_cfg.background)
    # The avatar draws a head whatever masks the prior trained on (a data-synth identity's fg
    # masks are heads), so a tracked clip's head masks whenever it has them: its fg masks hold
    # the torso (a procedural-only prior's one-shot of the news anchor scored 6.2 dB against
    # them, 13.5 against the head). Other folders: the prior's mask source as it applies.
    cfg.mask_source = "head" if has_head_masks(data_dir) else \
        identity_mask_source(data_dir, prior_cfg.get("mask_source", "fg"))
    cfg.eval_splits = tuple(prior_cfg.eval_splits)
    cfg.init_colors_from_frame = False
    cfg.placement = prior_cfg.placement.copy_and_resolve_references()
    cfg.render = prior_cfg.render.copy_and_resolve_references()
    cfg.avatar.use_audio = False          # an untrained audio token would only cost time
    cfg.avatar.init_scale_factor = prior_cfg.generator.init_scale_factor
    cfg.avatar.init_opacity = prior_cfg.generator.init_opacity
    return cfg


def oneshot(prior_dir, image: str, data_dir, out_dir, flame: str | None = None) -> dict:
    """Write the one-shot avatar folder `out_dir`; returns timings (seconds): total (reading
    included), generate (the jitted map + placement read, compile included) and
    generate_warm (the same call again: what a second image would cost)."""
    from flashtalker_jax.data.vhap import read_vhap

    start = time.perf_counter()
    data_dir = Path(data_dir)
    folder = read_prior(prior_dir)
    prior_cfg = folder.task_cfg
    flame_dir = find_flame_dir(data_dir, flame)
    seq = read_vhap(data_dir)
    index = frame_index(seq, image)
    frame = load_frames(seq, np.array([index]), prior_cfg.resolution)

    task_cfg = avatar_task_config(prior_cfg, data_dir, flame_dir)
    spec = build_spec(task_cfg, flame_dir, seq.shape, seq.static_offset, n_frames=1,
                      n_cameras=int(seq.cameras.max()) + 1)
    # The avatar's placement is the prior's (its config); the chart check is load_generator's.
    geometry = spec_geometry(spec, flame_dir, prior_cfg.generator.init_scale_factor)
    generator = load_generator(folder, geometry)
    predict_frame = template_predictor(generator, geometry, tuple(prior_cfg.background))

    t0 = time.perf_counter()
    values = jax.block_until_ready(predict_frame(frame))
    t1 = time.perf_counter()
    jax.block_until_ready(predict_frame(frame))
    t2 = time.perf_counter()

    template = {name: np.asarray(value[0]) for name, value in values.items()}
    model = make_model_factory(task_cfg, spec, template)(nnx.Rngs(0))
    out = export_avatar(model, task_cfg, Path(out_dir), camera=int(seq.cameras[index]))
    return {"avatar": str(out), "frame": index, "gaussians": int(spec.placement.count),
            "prior_steps": int(folder.meta["steps"]), "seconds_total": time.perf_counter() - start,
            "seconds_generate": t1 - t0, "seconds_generate_warm": t2 - t1}
