"""Trainer tasks for the motion models and their saved form.

`make_task(config.task)` builds the GGTalker prior (task.name "a2e_prior"), the
Audio2Param baseline ("audio2param"), Talk2Me's Expression Generator ("talk2me_eg") or
GenFaceTalk's audio branch ("genfacetalk_audio": E_audio + the motion encoder's heads,
optionally from a trained encoder, task.heads_from) on a folder of speaking identities: data (random windows of training sentences), model
factory, and loss (with the audio encoder's parameters frozen under `task.freeze`
prefixes during adaptation). A `flashtalker data
build-tfds` dataset as task.dataset is read through grain instead (`build_from_records`,
motion/records.py; the prior only). Normalisation
statistics (motion and audio) are computed on pretraining data and reused by adaptation
and inference (`task.norms_from`).

A finished run folder holds: model.npz (parameters by leaf path), model.json (task config,
identity names, kind, and `sources`: what it was trained from), norms/{motion,audio}.npz
and, for Audio2Param and the Expression Generator, templates.npy (each identity row's
style input: `style_input`): `load_motion_model(run)` rebuilds it from these files
alone, so the folder works copied anywhere with the training data gone. Paths in the
saved task (dataset, flame_dir, wav2vec2_dir, feature_cache) are stored resolved
(absolute). Sampling needs none of them but wav2vec2_dir (features="wav2vec2": the
checkpoint, identified by sources.wav2vec2_checkpoint_id); the FLAME model is needed only
to score meshes (eval-a2e, from its --data), identified by sources.flame_sha256.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ConfigError, InputFileError, ModelFileError
from flashtalker_jax.flame.model import FlameModel
from flashtalker_jax.motion import diffusion, losses
from flashtalker_jax.motion.a2e_prior import A2EPrior, PriorDims, PriorLossWeights, prior_loss
from flashtalker_jax.motion.genfacetalk_audio import (AudioBranchDims, GenFaceTalkAudio, check_streaming,
                                                      resolve_heads, with_heads)
from flashtalker_jax.motion.audio2param import Audio2Param, Audio2ParamDims
from flashtalker_jax.motion.talk2me_eg import (EGDims, ExpressionGenerator, eye_coefficients, eye_weighted_l1,
                                               eye_weights)
from flashtalker_jax.data.vhap import identity_folders
from flashtalker_jax.motion.dataset import (CropIterator, Identity, Normaliser,
                                            read_identity)
from flashtalker_jax.train.state import key_path_str
from flashtalker_jax.train.tasks import Task
from flashtalker_jax.utils.files import read_npy, read_npz

KINDS = ("a2e_prior", "audio2param", "talk2me_eg", "genfacetalk_audio")


# ----------------------------------------------------------------------------- data

def feature_extractor(task: ml_collections.ConfigDict):
    """The task's FeatureExtractor (task.features, task.wav2vec2_dir, cache task.feature_cache);
    its `features(path, fps)` is what read_identity slices into sentences."""
    from flashtalker_jax.audio.extractor import FeatureExtractor

    return FeatureExtractor.load(task.features, task.wav2vec2_dir, task.feature_cache)


def load_identities(task: ml_collections.ConfigDict, names_for_index: list[str] | None = None) -> list[Identity]:
    """Identities of task.dataset; embedding row = 1 + position in `names_for_index`
    (the pretraining list) or 0 ("any speaker") for names not in it."""
    folders = identity_folders(task.dataset)
    if task.max_identities > 0:
        folders = folders[:task.max_identities]
    names = [f.name for f in folders] if names_for_index is None else names_for_index
    if len(names) > task.model.num_identities:
        raise ConfigError(f"{len(names)} identities but task.model.num_identities={task.model.num_identities}")
    fn = feature_extractor(task).features
    return [read_identity(f, names.index(f.name) + 1 if f.name in names else 0, task.n_expr, fn,
                          task.model.steps_per_frame) for f in folders]


def make_augment(task: ml_collections.ConfigDict):
    """task.augment (recording-condition augmentation of the training audio) as a callable for
    CropIterator, or None when absent or prob == 0 (runs saved before it existed have none)."""
    settings = task.get("augment")
    if settings is None or settings.prob <= 0:
        return None
    if task.features != "log_mel":
        raise ConfigError(f"task.augment works on log-power features (log_mel), not {task.features!r}: "
                          "set --config.task.augment.prob=0")
    from flashtalker_jax.audio.augment import RecordingAugment
    from flashtalker_jax.audio.io import default_audio_config

    return RecordingAugment(settings, default_audio_config())


def training_sentences(identities: list[Identity], split: str):
    return [s for ident in identities for s in ident.splits[split]]


def compute_norms(identities: list[Identity]) -> tuple[Normaliser, Normaliser]:
    sentences = training_sentences(identities, "train")
    if not sentences:
        raise InputFileError(identities[0].name if identities else "dataset", "no training sentences in any identity",
                             "the train split (transforms_train.json) must list frames")
    return (Normaliser.of(np.concatenate([s.motion for s in sentences])),
            Normaliser.of(np.concatenate([s.audio for s in sentences])))


def load_norms(run: str | Path) -> tuple[Normaliser, Normaliser]:
    run = Path(run)
    return Normaliser.load(run / "norms" / "motion.npz"), Normaliser.load(run / "norms" / "audio.npz")


def save_norms(run: str | Path, motion: Normaliser, audio: Normaliser) -> None:
    (Path(run) / "norms").mkdir(parents=True, exist_ok=True)
    motion.save(Path(run) / "norms" / "motion.npz")
    audio.save(Path(run) / "norms" / "audio.npz")


def load_flame_for(task: ml_collections.ConfigDict, identities: list[Identity]) -> FlameModel:
    """The FLAME model (task.flame_dir, default <dataset>/flame) truncated to the motion's
    expression count and the identities' non-zero shape components (exact, cheaper)."""
    from flashtalker_jax.flame import load_flame_model

    model = load_flame_model(flame_folder(task))
    used = max((int(np.max(np.nonzero(i.shape)[0], initial=-1)) + 1 for i in identities), default=0)
    return model.truncated(n_shape=max(used, 1), n_expr=task.n_expr)


def flame_folder(task: ml_collections.ConfigDict) -> Path:
    """task.flame_dir, else <dataset>/flame, else <dataset>/../flame (one identity folder)."""
    if task.flame_dir:
        return Path(task.flame_dir)
    for candidate in (Path(task.dataset) / "flame", Path(task.dataset).parent / "flame"):
        if candidate.is_dir():
            return candidate
    raise ModelFileError(Path(task.dataset) / "flame", "no FLAME folder beside the data",
                         "set --config.task.flame_dir (the folder with generic_model.pkl and FLAME_masks.pkl)")


def region_ids(task: ml_collections.ConfigDict, region: str) -> np.ndarray:
    """Vertex ids of a FLAME_masks.pkl region beside the model (lips, upper_face, ...)."""
    from flashtalker_jax.flame import load_region_masks

    folder = flame_folder(task)
    masks = load_region_masks(folder)
    if region not in masks:
        raise ModelFileError(folder, f"FLAME_masks.pkl has no region {region!r} (has {sorted(masks)})")
    return masks[region].astype(np.int32)


# ----------------------------------------------------------------------------- models

def motion_dim(task) -> int:
    return task.n_expr + 3


def make_model_factory(task: ml_collections.ConfigDict, audio_dim: int, template_dim: int = 0):
    if task.name == "a2e_prior":
        dims = PriorDims.from_config(task.model, motion_dim(task), audio_dim)
        return lambda rngs: A2EPrior(dims, rngs)
    if task.name == "audio2param":
        dims = Audio2ParamDims.from_config(task.model, motion_dim(task), audio_dim, template_dim)
        return lambda rngs: Audio2Param(dims, rngs)
    if task.name == "talk2me_eg":
        dims = EGDims.from_config(task.model, motion_dim(task), audio_dim, template_dim)
        return lambda rngs: ExpressionGenerator(dims, rngs)
    if task.name == "genfacetalk_audio":
        dims = AudioBranchDims.from_config(task.model, task.n_expr, audio_dim)
        return lambda rngs: GenFaceTalkAudio(dims, rngs)
    raise ConfigError(f"task.name={task.name!r}: use one of {KINDS}")


def freeze(model: nnx.Module, prefixes) -> None:
    """Stop gradients into parameters whose leaf path starts with one of `prefixes`.
    With a decay-free Adam the frozen leaves then get exactly zero updates."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return
    state = nnx.state(model, nnx.Param)
    stopped = jax.tree_util.tree_map_with_path(
        lambda p, x: jax.lax.stop_gradient(x) if key_path_str(p).startswith(prefixes) else x, state)
    nnx.update(model, stopped)


def identity_template(flame: FlameModel, ident: Identity) -> np.ndarray:
    """Audio2Param's style input: the identity's mean mesh (shape + mean training motion,
    zero pose) minus the FLAME template, in cm, flattened (3V,)."""
    train = ident.splits["train"] or [s for v in ident.splits.values() for s in v]
    mean_motion = np.concatenate([s.motion for s in train]).mean(0)
    vertices = losses.motion_vertices(flame, jnp.asarray(mean_motion[None, None], jnp.float32),
                                      jnp.asarray(ident.shape[None, :flame.n_shape]),
                                      jnp.arange(flame.n_vertices))[0, 0]
    return (np.asarray(vertices - flame.v_template) * 100.0).reshape(-1).astype(np.float32)


def identity_templates(flame: FlameModel, identities: list[Identity]) -> np.ndarray:
    """(embedding rows, 3V) table of identity_template by each identity's row."""
    out = np.zeros((max(i.index for i in identities) + 1, 3 * flame.n_vertices), np.float32)
    for ident in identities:
        out[ident.index] = identity_template(flame, ident)
    return out


def reference_frame(ident: Identity, motion_norm: Normaliser) -> np.ndarray:
    """The Expression Generator's reference frame: the identity's mean training [expr | jaw],
    normalised (P,); a mean rather than one frame, so a blink or a vowel in the chosen
    frame does not become the identity's style."""
    train = ident.splits["train"] or [s for v in ident.splits.values() for s in v]
    return motion_norm.normalise(np.concatenate([s.motion for s in train]).mean(0)).astype(np.float32)


def reference_frames(identities: list[Identity], motion_norm: Normaliser) -> np.ndarray:
    """(embedding rows, P) table of reference_frame by row; row 0 (any speaker) stays zero,
    which is the training data's mean frame in normalised units."""
    table = np.zeros((max(i.index for i in identities) + 1, motion_norm.mean.shape[-1]), np.float32)
    for ident in identities:
        table[ident.index] = reference_frame(ident, motion_norm)
    return table


def style_input(kind: str, flame: FlameModel, ident: Identity, motion_norm: Normaliser) -> np.ndarray | None:
    """What a model of `kind` takes as the style of `ident` (from the identity's own data):
    Audio2Param its template mesh, the Expression Generator its reference frame, the
    diffusion prior nothing (its style is the embedding row), GenFaceTalk's audio branch
    nothing (it has no style input)."""
    if kind == "audio2param":
        return identity_template(flame, ident)
    if kind == "talk2me_eg":
        return reference_frame(ident, motion_norm)
    return None


def resolve_eye_ids(task: ml_collections.ConfigDict, flame: FlameModel) -> None:
    """Fill task.model.eye_ids, when empty, with the expression coefficients that move
    mostly FLAME_masks 'eye_region' (talk2me_eg.eye_coefficients); written into the task so
    the saved run carries them (the model is rebuilt from model.json without any FLAME).
    Given ones must be expression coefficients (not the jaw)."""
    eye = tuple(task.model.eye_ids) or eye_coefficients(flame.expr_dirs, region_ids(task, "eye_region"),
                                                        task.model.eye_min_share)
    if not eye:
        raise ConfigError(f"no expression coefficient puts >= {task.model.eye_min_share} of its motion on "
                          "FLAME_masks 'eye_region': lower task.model.eye_min_share or set task.model.eye_ids")
    if min(eye) < 0 or max(eye) >= task.n_expr:
        raise ConfigError(f"task.model.eye_ids={eye}: name expression coefficients 0..{task.n_expr - 1}")
    task.model.eye_ids = tuple(int(i) for i in eye)


def _loss_fn(task, flame: FlameModel, lip_ids: np.ndarray, motion_norm: Normaliser, templates: np.ndarray | None):
    loss = task.loss
    mean, std = jnp.asarray(motion_norm.mean), jnp.asarray(motion_norm.std)
    denorm = lambda m: m * std + mean

    def mesh_term_on(vertex_ids):
        # Exact FLAME positions of just these vertices (small constants inside the jitted step).
        subset = losses.vertex_subset_flame(flame, vertex_ids)
        first = jnp.arange(len(vertex_ids))

        def term(pred, target, batch):
            return losses.vertex_loss(subset, denorm(pred), denorm(target), batch["shape"][:, :flame.n_shape],
                                      first, batch["frame_mask"])
        return term

    if task.name == "a2e_prior":
        weights = PriorLossWeights(regression=loss.regression, temporal=loss.temporal,
                                   temporal_delta=loss.temporal_delta, lip=loss.lip, cond_drop=loss.cond_drop)
        alpha_bars = jnp.asarray(diffusion.cosine_alpha_bars(task.model.diffusion_steps), jnp.float32)
        lip_term = mesh_term_on(lip_ids)

        def prior_fn(model, batch, key):
            freeze(model, task.freeze)
            id_key, key = jax.random.split(key)
            keep = ~jax.random.bernoulli(id_key, loss.identity_drop, batch["identity"].shape)
            batch = {**batch, "identity": jnp.where(keep, batch["identity"], 0)}
            return prior_loss(model, batch, key, alpha_bars, weights, lip_term)

        return prior_fn

    if task.name == "genfacetalk_audio":
        frozen = tuple(task.freeze) + (() if task.train_heads else ("heads",))
        lip_term = mesh_term_on(lip_ids) if loss.vertices else None

        def gft_fn(model, batch, key):
            freeze(model, frozen)
            pred = model(batch["audio"], batch["frame_mask"])
            # GenFaceTalk's soft FLAME-code loss: squared error of the normalised codes.
            code = losses.regression_loss(pred, batch["motion"], batch["frame_mask"])
            metrics = {"code": code}
            total = loss.code * code
            if lip_term is not None:
                metrics["lip_mm2"] = lip_term(pred, batch["motion"], batch)
                total = total + loss.vertices * metrics["lip_mm2"]
            return total, metrics

        return gft_fn

    table = jnp.asarray(templates)
    if task.name == "talk2me_eg":
        weights = jnp.asarray(eye_weights(motion_dim(task), tuple(task.model.eye_ids), loss.eye_weight))
        eye = jnp.asarray(tuple(task.model.eye_ids))

        def eg_fn(model, batch, key):
            freeze(model, task.freeze)
            pred = model(batch["audio"], table[batch["identity"]], batch["frame_mask"])
            l1 = eye_weighted_l1(pred, batch["motion"], batch["frame_mask"], weights)
            eye_l1 = losses.masked_mean(jnp.mean(jnp.abs(pred - batch["motion"])[..., eye], -1), batch["frame_mask"])
            return loss.l1 * l1, {"weighted_l1": l1, "eye_l1": eye_l1}

        return eg_fn

    jaw_term = mesh_term_on(losses.jaw_driven_vertices(flame))

    def a2p_fn(model, batch, key):
        freeze(model, task.freeze)
        pred = model(batch["audio"], table[batch["identity"]], batch["frame_mask"])
        vertex = jaw_term(pred, batch["motion"], batch)
        reg = losses.regression_loss(pred, batch["motion"], batch["frame_mask"])
        return loss.vertex * vertex + loss.regression * reg, {"vertex_mm2": vertex, "regression": reg}

    return a2p_fn


@dataclasses.dataclass
class MotionTask:
    """Everything a motion job needs beside the trainer's Task."""
    task: Task
    identities: list[Identity]
    motion_norm: Normaliser
    audio_norm: Normaliser
    flame: FlameModel
    templates: np.ndarray | None
    audio_dim: int


def build(task: ml_collections.ConfigDict, names_for_index: list[str] | None = None,
          norms: tuple[Normaliser, Normaliser] | None = None,
          identities: list[Identity] | None = None) -> MotionTask:
    if identities is None and is_built_dataset(task.dataset):
        return build_from_records(task, norms)
    identities = identities or load_identities(task, names_for_index)
    motion_norm, audio_norm = norms or compute_norms(identities)
    flame = load_flame_for(task, identities)
    lip_ids = region_ids(task, "lips")
    audio_dim = identities[0].splits["train"][0].audio.shape[1] if identities[0].splits["train"] else \
        next(s for v in identities[0].splits.values() for s in v).audio.shape[1]
    templates = identity_templates(flame, identities) if task.name == "audio2param" else None
    if task.name == "talk2me_eg":
        resolve_eye_ids(task, flame)
        templates = reference_frames(identities, motion_norm)
    heads = None
    if task.name == "genfacetalk_audio" and norms is None:
        # Pretraining (adaptation has norms: it starts from the run's own heads and units).
        from flashtalker_jax.flame.loader import find_model_file

        heads = resolve_heads(task, find_model_file(flame_folder(task)))
        if heads is not None:   # the heads' own units: the encoder's CodeStats
            motion_norm = Normaliser(mean=heads.mean.astype(np.float32), std=heads.std.astype(np.float32))
    if task.name == "genfacetalk_audio":
        check_streaming(task, AudioBranchDims.from_config(task.model, task.n_expr, audio_dim))
    template_dim = 0 if templates is None else templates.shape[1]
    context = task.model.context if task.name == "a2e_prior" else 0
    window = task.model.window
    sentences = training_sentences(identities, "train")
    augment = make_augment(task)

    def make_data(process_index: int, process_count: int) -> CropIterator:
        return CropIterator(sentences, task.batch_size, window, context, task.min_frames,
                            task.model.steps_per_frame, task.data_seed, motion_norm, audio_norm,
                            process_index, process_count, augment)

    make_model = make_model_factory(task, audio_dim, template_dim)
    if heads is not None:
        make_model = lambda rngs, build_model=make_model: with_heads(build_model(rngs), heads)
    trainer_task = Task(make_model=make_model,
                        loss_fn=_loss_fn(task, flame, lip_ids, motion_norm, templates), make_data=make_data)
    return MotionTask(trainer_task, identities, motion_norm, audio_norm, flame, templates, audio_dim)


def is_built_dataset(path: str | Path) -> bool:
    """True when `path` holds `flashtalker data build-tfds` output (checked when opened); a
    path check, so the identity-folder route never imports grain or tensorflow-datasets."""
    return bool(path) and (Path(path) / "talking_heads").is_dir()


def build_from_records(task: ml_collections.ConfigDict,
                       norms: tuple[Normaliser, Normaliser] | None = None) -> MotionTask:
    """build() on a built TFDS dataset: grain windows of its train split (motion/records.py);
    the diffusion prior only. Identities carry no sentences (they stay on disk)."""
    from flashtalker_jax.motion import records

    data = records.open_records(task)
    motion_norm, audio_norm = norms or records.sample_norms(data.source, int(task.norm_windows),
                                                            int(task.data_seed))
    flame = load_flame_for(task, data.identities)
    make_data = records.make_data_fn(data, task, motion_norm, audio_norm, make_augment(task))
    trainer_task = Task(make_model=make_model_factory(task, data.audio_dim),
                        loss_fn=_loss_fn(task, flame, region_ids(task, "lips"), motion_norm, None),
                        make_data=make_data)
    return MotionTask(trainer_task, data.identities, motion_norm, audio_norm, flame, None, data.audio_dim)


def make_task(task: ml_collections.ConfigDict) -> Task:
    """Registry entry (flashtalker_jax/train/tasks.py): pretraining on task.dataset."""
    return build(task).task


# ----------------------------------------------------------------------------- saved models

RUN_PATH_FIELDS = ("dataset", "flame_dir", "wav2vec2_dir", "feature_cache", "heads_from")


def resolved_task(task: ml_collections.ConfigDict) -> dict:
    """The task as saved in model.json: a plain dict, non-empty path fields absolute."""
    saved = json.loads(json.dumps(task.to_dict(), default=list))
    for name in RUN_PATH_FIELDS:
        if saved.get(name):
            saved[name] = str(Path(saved[name]).resolve())
    return saved


def run_sources(task: ml_collections.ConfigDict) -> dict:
    """model.json's `sources`: the training data, the FLAME folder (with the sha256 of each
    file: meshes of another FLAME model are not comparable) and the wav2vec2 checkpoint id,
    each None when it cannot be found."""
    from flashtalker_jax.avatar.export import flame_sha256

    sources = {"dataset": str(Path(task.dataset).resolve()) if task.dataset else None,
               "flame_dir": None, "flame_sha256": None, "wav2vec2_checkpoint_id": None}
    try:
        folder = flame_folder(task)
    except ModelFileError:
        folder = None
    if folder is not None and folder.is_dir():
        sources["flame_dir"] = str(folder.resolve())
        sources["flame_sha256"] = flame_sha256(folder)
    if task.features == "wav2vec2" and task.wav2vec2_dir and Path(task.wav2vec2_dir).is_dir():
        from flashtalker_jax.audio.wav2vec2 import _checkpoint_id

        sources["wav2vec2_checkpoint_id"] = _checkpoint_id(Path(task.wav2vec2_dir))
    return sources


def save_motion_model(run: str | Path, task: ml_collections.ConfigDict, params: dict[str, np.ndarray],
                      motion: MotionTask, identity_names: list[str]) -> None:
    """model.npz + model.json + norms/ (+ templates.npy) into `run` (params: flat
    {"a/b/value": array}); model.json holds the task with resolved paths and its sources."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    np.savez(run / "model.npz", **params)
    save_norms(run, motion.motion_norm, motion.audio_norm)
    if motion.templates is not None:
        np.save(run / "templates.npy", motion.templates)
    meta = {"kind": task.name, "task": resolved_task(task), "sources": run_sources(task),
            "identities": identity_names, "audio_dim": motion.audio_dim,
            "template_dim": 0 if motion.templates is None else int(motion.templates.shape[1])}
    (run / "model.json").write_text(json.dumps(meta, indent=1))


@dataclasses.dataclass
class LoadedMotionModel:
    kind: str
    model: nnx.Module
    task: ml_collections.ConfigDict
    identities: list[str]
    motion_norm: Normaliser
    audio_norm: Normaliser
    templates: np.ndarray | None
    path: Path | None = None
    sources: dict = dataclasses.field(default_factory=dict)   # model.json's (runs before it: {})


def load_motion_model(run: str | Path) -> LoadedMotionModel:
    """A run folder of pretrain-a2e / adapt-a2e, from its own files only (module docstring)."""
    run = Path(run)
    meta_path = run / "model.json"
    if not run.is_dir():
        raise ModelFileError(run, "motion run folder not found",
                             "pass --a2e RUN, a run folder written by pretrain-a2e or adapt-a2e")
    if not meta_path.is_file():
        raise ModelFileError(meta_path, "missing", "pass a run folder written by pretrain-a2e or adapt-a2e")
    meta = json.loads(meta_path.read_text())
    task = ml_collections.ConfigDict(meta["task"])
    task.freeze = tuple(task.freeze)
    factory = make_model_factory(task, meta["audio_dim"], meta["template_dim"])
    # Shapes only (no initialisation compute), then the saved arrays fill every leaf.
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: factory(nnx.Rngs(0))))
    params = read_params(run)
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    names = [key_path_str(p) for p, _ in flat]
    missing = [n for n in names if n not in params]
    if missing:
        raise ModelFileError(run / "model.npz", f"lacks parameters {missing[:3]}",
                             "the run is incomplete or from another version")
    wrong = [n for (n, (_, leaf)) in zip(names, flat) if tuple(params[n].shape) != tuple(leaf.shape)]
    if wrong:
        raise ModelFileError(run / "model.npz", f"parameters {wrong[:3]} have other shapes than model.json implies",
                             "the run folder mixes files of different runs")
    model = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, [jnp.asarray(params[n]) for n in names]))
    templates = read_templates(run, meta["template_dim"])
    for name in ("motion.npz", "audio.npz"):
        if not (run / "norms" / name).is_file():
            raise ModelFileError(run / "norms" / name, "missing (normalisation statistics)",
                                 "copy the whole run folder")
    motion_norm, audio_norm = load_norms(run)
    return LoadedMotionModel(meta["kind"], model, task, meta["identities"], motion_norm, audio_norm, templates,
                             run, meta.get("sources") or {})


RUN_DAMAGED = "the run folder is damaged or incomplete: copy the whole folder again, or re-run the job"


def read_params(run: Path) -> dict[str, np.ndarray]:
    """model.npz of a run folder ({leaf path: array}); ModelFileError naming the file when
    it is missing, truncated or not an .npz."""
    return read_npz(run / "model.npz", "the run's parameters", RUN_DAMAGED)


def read_templates(run: Path, template_dim: int) -> np.ndarray | None:
    """templates.npy (Audio2Param's identity templates, one row per style) when model.json
    says the run has them (template_dim > 0), checked against that width."""
    if not template_dim:
        return None
    path = run / "templates.npy"
    templates = read_npy(path, "Audio2Param identity templates", RUN_DAMAGED)
    if templates.ndim != 2 or templates.shape[1] != template_dim:
        raise ModelFileError(path, f"has shape {templates.shape}, model.json says (styles, {template_dim})",
                             "the run folder mixes files of different runs: " + RUN_DAMAGED)
    return templates


def params_of(state) -> dict[str, Any]:
    """Flat numpy params of a TrainState (same names model.npz uses)."""
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    return {key_path_str(p): np.asarray(jax.device_get(v)) for p, v in flat}
