"""The encoder folder: what `flashtalker pretrain-motion-encoder` writes beside its
checkpoints and `reenact`, `eval-motion-encoder` and `track --init` read. Self-contained
apart from the FLAME model, which it names by sha256 (codes only mean something in the
model they were trained on: a different model is refused, never silently used).

  RUN/encoder/config.json   the task config (task.dataset resolved: where it was trained)
  RUN/encoder/meta.json     format_version, steps, resolution, n_expr, n_shape, temporal
                            kernel, flame_file + flame_sha256 (written last)
  RUN/encoder/encoder.npz   every encoder variable by its path (weights and CodeStats)
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.encoder.model import MotionEncoder, motion_widths
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.files import atomic_path, read_model_folder, sha256_file

FORMAT_VERSION = 1
REWRITE = "re-run `flashtalker pretrain-motion-encoder --resume` on the run folder (a finished run rewrites RUN/encoder)"
GIVE = "pass --encoder RUN written by `flashtalker pretrain-motion-encoder`"


@dataclasses.dataclass(frozen=True)
class EncoderFolder:
    path: Path
    task_cfg: ml_collections.ConfigDict
    meta: dict
    encoder: MotionEncoder


def resolve_encoder_dir(path) -> Path:
    """RUN/encoder when given the run folder RUN, else the path."""
    path = Path(path)
    return path / "encoder" if (path / "encoder").is_dir() else path


def write_encoder(out_dir, encoder: MotionEncoder, task_cfg, steps: int, flame_file: Path) -> Path:
    """Write the folder (module docstring); meta.json last, so a folder with one is complete."""
    from flashtalker_jax.avatar.export import flat_state

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "encoder.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **flat_state(encoder))
    saved = task_cfg.copy_and_resolve_references()
    saved.dataset = ",".join(str(Path(p.strip()).resolve()) for p in str(task_cfg.dataset).split(",") if p.strip())
    (out_dir / "config.json").write_text(saved.to_json_best_effort(indent=1))
    meta = {"format_version": FORMAT_VERSION, "steps": int(steps), "resolution": int(encoder.resolution),
            "n_expr": int(encoder.n_expr), "n_shape": int(encoder.n_shape),
            "temporal_kernel": int(task_cfg.model.temporal_kernel),
            "flame_file": str(Path(flame_file).resolve()), "flame_sha256": sha256_file(flame_file)}
    with atomic_path(out_dir / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return out_dir


def read_encoder(encoder_dir, flame_file: Path | None = None) -> EncoderFolder:
    """The folder's encoder with its weights (module docstring). `flame_file`: the FLAME
    model the caller drives; ModelFileError when it is not the one the encoder learned."""
    path = resolve_encoder_dir(encoder_dir)
    meta, config, state = read_model_folder(path, "encoder", "encoder.npz", FORMAT_VERSION, GIVE, REWRITE)
    if flame_file is not None and sha256_file(flame_file) != meta.get("flame_sha256"):
        raise ModelFileError(Path(flame_file), "is not the FLAME model the encoder was trained with "
                             f"({meta.get('flame_file')})", "drive a head of that FLAME model, or train an "
                                                           "encoder on this one")
    cfg = ml_collections.ConfigDict(config)
    return EncoderFolder(path, cfg, meta, _restore(cfg, state, path / "encoder.npz"))


def _restore(task_cfg, state: dict[str, np.ndarray], file: Path) -> MotionEncoder:
    from flashtalker_jax.avatar.export import load_flat_state
    from flashtalker_jax.encoder.task import make_encoder

    channels = sum(motion_widths(int(task_cfg.n_expr)).values())
    blank = {"motion_mean": np.zeros(channels), "motion_std": np.ones(channels),
             "shape_mean": np.zeros(task_cfg.n_shape), "shape_std": np.ones(task_cfg.n_shape)}
    try:
        encoder = make_encoder(task_cfg, blank, nnx.Rngs(0))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(file.parent / "config.json", f"written by an incompatible version "
                             f"({type(exc).__name__}: {exc})", REWRITE) from exc
    return load_flat_state(encoder, state, file, REWRITE)
