"""The prior folder: what `flashtalker pretrain-e2v` writes next to its checkpoints and
`flashtalker oneshot` reads. Self-contained apart from the FLAME model (the one-shot
identity's own, whose UV chart must be the prior's: checked texel by texel).

  RUN/prior/config.json    the e2v task config (task.dataset resolved: where it was trained)
  RUN/prior/meta.json      format_version, steps trained, map resolution, texel count,
                           generator_kind (task.generator.kind; absent in priors written
                           before the option: "uv_unet", as their config's missing key reads)
  RUN/prior/generator.npz  every generator variable by its path (Params and the UV chart)

`read_prior` raises ModelFileError naming the file that is missing, unreadable, or does
not fit this version's generator or the given FLAME model.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.export import flat_state, load_flat_state
from flashtalker_jax.e2v.generator import IdentityGaussianGenerator
from flashtalker_jax.e2v.task import Geometry, generator_kind, make_generator
from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.files import atomic_path, read_model_folder

FORMAT_VERSION = 1
FILES = ("meta.json", "config.json", "generator.npz")
REWRITE = "re-run `flashtalker pretrain-e2v --resume` on the run folder (a finished run rewrites RUN/prior)"
GIVE = "pass --prior RUN written by `flashtalker pretrain-e2v`"


@dataclasses.dataclass(frozen=True)
class PriorFolder:
    path: Path
    task_cfg: ml_collections.ConfigDict
    meta: dict
    state: dict[str, np.ndarray]


def resolve_prior_dir(path) -> Path:
    """RUN/prior when given the run folder RUN, else the path."""
    path = Path(path)
    return path / "prior" if (path / "prior").is_dir() else path


def write_prior(out_dir, generator: IdentityGaussianGenerator, task_cfg, steps: int) -> Path:
    """Write the folder (module docstring); meta.json last, so a folder with one is complete."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = flat_state(generator)
    with atomic_path(out_dir / "generator.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **state)
    saved = task_cfg.copy_and_resolve_references()
    saved.dataset = str(Path(task_cfg.dataset).resolve()) if task_cfg.dataset else ""
    (out_dir / "config.json").write_text(saved.to_json_best_effort(indent=1))
    meta = {"format_version": FORMAT_VERSION, "steps": int(steps),
            "map_resolution": int(generator.resolution), "texels": int(generator.texel_face.shape[0]),
            "generator_kind": generator_kind(task_cfg)}
    with atomic_path(out_dir / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return out_dir


def read_prior(prior_dir) -> PriorFolder:
    """Every file of a prior folder (RUN or RUN/prior), checked (module docstring)."""
    path = resolve_prior_dir(prior_dir)
    meta, config, state = read_model_folder(path, "prior", "generator.npz", FORMAT_VERSION, GIVE, REWRITE)
    cfg = ml_collections.ConfigDict(config)
    kind = meta.get("generator_kind", "uv_unet")
    if cfg.get("generator", {}).get("kind", "uv_unet") != kind:
        raise ModelFileError(path / "meta.json", f"generator_kind {kind!r} differs from config.json's "
                                                 f"task.generator.kind", REWRITE)
    return PriorFolder(path, cfg, meta, state)


def load_generator(folder: PriorFolder, geometry: Geometry) -> IdentityGaussianGenerator:
    """The prior's generator on `geometry` (the one-shot identity's FLAME model under the
    prior's config): ModelFileError naming generator.npz when its variables or UV chart
    differ from what this code and that FLAME model build."""
    file = folder.path / "generator.npz"
    try:
        generator = make_generator(folder.task_cfg, geometry, nnx.Rngs(0))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(folder.path / "config.json", f"written by an incompatible version "
                             f"({type(exc).__name__}: {exc})", REWRITE) from exc
    expected = flat_state(generator)
    for key in expected:   # the chart must be this FLAME model's, value for value
        is_chart = key.split("/")[0] in ("texel_face", "texel_bary", "texel_cell", "faces")
        if is_chart and key in folder.state and folder.state[key].shape == expected[key].shape \
                and not np.array_equal(folder.state[key], expected[key]):
            raise ModelFileError(file, f"UV chart ({key}) differs from the FLAME model's: the prior was "
                                       "trained on another head topology or UV layout",
                                 "use the FLAME model the prior was trained with (--flame)")
    return load_flat_state(generator, folder.state, file, REWRITE)
