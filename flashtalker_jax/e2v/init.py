"""Prior-initialised adaptation (`flashtalker adapt --prior RUN`): GGTalker's "Customized
Adaptation" on top of avatar/adapt.py.

The prior's generator predicts the UV Gaussian map M from one reference frame of the
identity (task.prior.reference_frame: a row of the training split, read at the prior's
own resolution, the one it was trained on); M is read at the avatar's UV placement and the
values of the template attributes named in task.prior.attributes replace the fresh
template's (`prior_template`; teeth keep the template values, generator.avatar_parameters;
the attributes not named keep the default initialisation). `condition_template` raises the
map's log-scales to at least the initial ones + task.prior.min_log_scale and normalises its
quaternions. Why not all of the map: the prior paints with Gaussians 4-6x smaller than the
initial ones and hides a fifth of them (opacity ~1e-5); a run started there fits its
training frames as well but draws the head's outline (an ear) worse on held-out poses and
expressions: ~1 dB lower plateau (BENCHMARKS, issue 18). The default takes the map without
its opacities and with no Gaussian below its initial scale: with the 120-identity prior
(pretrain_e2v.py:cpu_long), three seeds and a tuned step size, +0.1 to +2.2 dB over from
scratch at 1/5 of the steps on eight unseen identities and -0.4 to +1.0 dB at the end (not
the 5x shorter adaptation the issue asks), but no longer the one-shot render at step 0.
Adapting the whole map loses held-out PSNR from the first steps: its Gaussians over-fit the
training frames once moved (BENCHMARKS, issue 18, session 10).
The rest is today's adaptation: the deformer, colour MLP and query features start as
usual (zero last layers: step 0 renders exactly the template's Gaussians), and the FLAME /
camera refinement stays frozen until task.refine_start, then trains jointly with the map
(GGTalker: the map alone with FLAME frozen first, then both).

The prior must describe the adaptation's Gaussians: the same placement block and initial
scale factor (the map's log-scales are relative to it), checked by `check_matches`
(ConfigError naming the prior's config.json and the override that fixes it), and a UV
chart equal to the FLAME model's (prior.load_generator: ModelFileError naming
generator.npz). A mismatch is refused, never adapted from scratch instead.

The prediction is a deterministic function of the prior's files and the frame, so a
resumed run that restarts from step 0 (no checkpoint yet) rebuilds the same template. The
run's config records task.prior.path (absolute) and task.prior.sha256 (`prior_digest`);
`pin_prior` makes a resumed run use that prior again and refuses another or a changed one.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.frames import load_frames, split_indices
from flashtalker_jax.avatar.renderer import AvatarSpec
from flashtalker_jax.e2v.generator import IdentityGaussianGenerator, initial_log_scale, placement_uv
from flashtalker_jax.e2v.prior import FILES, load_generator, read_prior, resolve_prior_dir
from flashtalker_jax.e2v.task import Geometry, predict
from flashtalker_jax.errors import ConfigError, ModelFileError
from flashtalker_jax.flame.loader import load_uv_layout
from flashtalker_jax.utils.files import read_json_object, sha256_file

NO_PRIOR = {"path": "", "sha256": ""}


def prior_digest(prior_dir: Path) -> str:
    """sha256 over the prior folder's files (prior.FILES): what its prediction depends on."""
    digest = hashlib.sha256()
    for name in FILES:
        path = prior_dir / name
        if not path.is_file():
            raise ModelFileError(path, "prior file not found",
                                 "pass --prior RUN written by `flashtalker pretrain-e2v`")
        digest.update(f"{name} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def pin_prior(prior_cfg, run_dir: Path, resume: bool) -> dict[str, str]:
    """{"path", "sha256"} of the prior a run adapts from (both "" for none). A new run: the
    asked prior (prior_cfg.path), resolved. A resumed run: the one RUN/config.json
    recorded; naming it again (the same bytes, wherever they lie now) is allowed. Refused:
    another prior (ConfigError), a prior added to a run started without one (ConfigError),
    a recorded prior whose files changed (ModelFileError)."""
    asked = prior_cfg.path
    recorded = _recorded_prior(run_dir / "config.json") if resume else None
    if recorded is None:
        if not asked:
            return dict(NO_PRIOR)
        path = resolve_prior_dir(asked).resolve()
        return {"path": str(path), "sha256": prior_digest(path)}
    if not recorded["path"]:
        if asked:
            raise ConfigError(f"{run_dir / 'config.json'}: this run started without a prior, so resuming it "
                              f"cannot add --prior {asked} (drop --prior, or adapt into a new --out)")
        return dict(NO_PRIOR)
    path = resolve_prior_dir(asked).resolve() if asked else Path(recorded["path"])
    digest = prior_digest(path)
    if digest == recorded["sha256"]:
        return {"path": str(path), "sha256": digest}
    if asked:
        raise ConfigError(f"{run_dir / 'config.json'}: this run started from the prior {recorded['path']} "
                          f"(sha256 {recorded['sha256'][:12]}...); --prior {asked} is another one (sha256 "
                          f"{digest[:12]}...) (resume with the prior it started from, or adapt into a new --out)")
    raise ModelFileError(path, f"the prior changed since this run started (sha256 {digest[:12]}..., the run "
                               f"recorded {recorded['sha256'][:12]}...)",
                         "restore the prior the run started from, or adapt into a new --out")


def _recorded_prior(config_file: Path) -> dict[str, str] | None:
    """task.prior {"path", "sha256"} of a run's saved config; None without a saved config.
    A run saved before priors existed recorded none."""
    if not config_file.is_file():
        return None
    saved = read_json_object(config_file, "run config", "start the run over in a new --out")
    prior = saved.get("task", {}).get("prior") or {}
    return {"path": prior.get("path", ""), "sha256": prior.get("sha256", "")}


def _plain(value):
    """Config values as compared: tuples and JSON lists alike."""
    return list(value) if isinstance(value, (list, tuple)) else value


def check_matches(prior_cfg, task_cfg, config_file: Path) -> None:
    """ConfigError unless the adaptation places the prior's Gaussians: every placement field
    and the initial scale factor equal (module docstring)."""
    pairs = {f"placement.{name}": (task_cfg.placement[name], prior_cfg.placement.get(name))
             for name in task_cfg.placement}
    pairs["avatar.init_scale_factor"] = (task_cfg.avatar.init_scale_factor,
                                         prior_cfg.generator.get("init_scale_factor"))
    for name, (ours, prior) in pairs.items():
        if _plain(ours) != _plain(prior):
            raise ConfigError(f"{config_file}: the prior was pretrained with task.{name}={prior!r}, this "
                              f"adaptation has {ours!r}: its UV map would land on other Gaussians "
                              f"(pass --config.task.{name}={prior!r}, or pretrain a prior with {ours!r})")


def spec_geometry(spec: AvatarSpec, flame_dir: Path, init_scale_factor: float) -> Geometry:
    """The identity's Geometry for the generator: its personalised FLAME model (the tracked
    frames pose it with shape baked in, as adaptation renders it), its placement, the UV
    coordinates of its UV Gaussians and their initial log-scale."""
    vt, ft = load_uv_layout(flame_dir)
    log_scale = initial_log_scale(spec.placement, np.asarray(spec.flame.v_template),
                                  np.asarray(spec.flame.faces), init_scale_factor)
    return Geometry(spec.flame, spec.placement, placement_uv(spec.placement, vt, ft), log_scale, vt, ft)


def template_predictor(generator: IdentityGaussianGenerator, geometry: Geometry, background):
    """predict(frame) -> {template name: (1, N, ...)}: the jitted map of one frame (load_frames
    arrays of one row) read at the geometry's placement."""
    graphdef, state = nnx.split(generator)
    no_shape = jnp.zeros((1, 0), jnp.float32)   # the personalised model has its shape baked in

    @jax.jit
    def run(state, frame):
        return predict(nnx.merge(graphdef, state), geometry, frame, no_shape, background)[1]

    return lambda frame: run(state, {k: jnp.asarray(v) for k, v in frame.items()})


def reference_frame(task_cfg, resolution: int) -> dict[str, np.ndarray]:
    """load_frames arrays of the reference frame (task.prior.reference_frame-th training row)."""
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(task_cfg.data)
    train = split_indices(seq, tuple(task_cfg.train_splits))
    row = int(task_cfg.prior.reference_frame)
    if not 0 <= row < len(train):
        raise ConfigError(f"task.prior.reference_frame={row}: the training split of {task_cfg.data} has "
                          f"{len(train)} frames (pass 0..{len(train) - 1})")
    return load_frames(seq, train[row:row + 1], resolution)


def prior_template(task_cfg, spec: AvatarSpec, flame_dir: Path) -> dict[str, np.ndarray]:
    """{template name: (N, ...) values at their true scale} the prior predicts for the
    identity of task_cfg.data (module docstring); the checks above first."""
    folder = read_prior(task_cfg.prior.path)
    if task_cfg.prior.sha256 and prior_digest(folder.path) != task_cfg.prior.sha256:
        raise ModelFileError(folder.path, f"its files do not have the recorded sha256 "
                                          f"{task_cfg.prior.sha256[:12]}... (task.prior.sha256)",
                             "restore that prior, or clear task.prior.sha256 to adapt from this one")
    check_matches(folder.task_cfg, task_cfg, folder.path / "config.json")
    geometry = spec_geometry(spec, flame_dir, task_cfg.avatar.init_scale_factor)
    generator = load_generator(folder, geometry)
    predict_frame = template_predictor(generator, geometry, tuple(folder.task_cfg.background))
    values = predict_frame(reference_frame(task_cfg, int(folder.task_cfg.resolution)))
    return condition_template({name: np.asarray(value[0]) for name, value in values.items()},
                              geometry.init_log_scale, task_cfg.prior)


def condition_template(values: dict[str, np.ndarray], init_log_scale: np.ndarray, prior_cfg) -> dict[str, np.ndarray]:
    """The part of the predicted template adaptation starts from (module docstring): the
    attributes named in prior.attributes (the others keep the default initialisation),
    log-scales raised to at least the initial one + prior.min_log_scale, quaternions
    normalised (the same rotation; Adam turns a quaternion of norm q 1/q as far per step,
    and the prior's reach q ~ 25). values: (N, ...) template arrays at their true scale;
    init_log_scale (N,) the placement's."""
    names = tuple(prior_cfg.attributes)
    unknown = sorted(set(names) - set(values))
    if unknown:
        raise ConfigError(f"task.prior.attributes={names}: {unknown} not predicted by the prior (choose from "
                          f"{sorted(values)})")
    chex.assert_shape(values["local_log_scales"], (init_log_scale.shape[0], 3))
    out = {name: values[name] for name in names}
    if "local_log_scales" in out:
        floor = init_log_scale[:, None] + float(prior_cfg.min_log_scale)
        out["local_log_scales"] = np.maximum(out["local_log_scales"], floor).astype(np.float32)
    if "local_quats" in out:
        quats = out["local_quats"]
        out["local_quats"] = (quats / np.linalg.norm(quats, axis=-1, keepdims=True)).astype(np.float32)
    return out
