"""The motion jobs behind `flashtalker pretrain-a2e | adapt-a2e | eval-a2e`.

pretrain: trainer.fit on all identities of a dataset (identity folders in memory, or a
  `flashtalker data build-tfds` dataset through grain: motion/records.py), then
  model.npz/model.json/norms.
adapt: start from a prior run's parameters (trainer init_from), audio encoder frozen,
  low learning rate, scored every `early_stop.eval_every` steps on held-out sentences
  (the val split, else the identity's last training sentence) by `early_stop.criterion`
  (the sampled mouth-opening correlation by default, or the held-out loss); the best
  evaluation's parameters are saved, and training stops after `patience` evaluations
  without gain.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.data.vhap import identity_folders, read_vhap_index
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.motion import tasks
from flashtalker_jax.motion.dataset import CropIterator, Identity


def synthesize(out: str | Path, identities: int, first: int, seconds: float, seed: int,
               cfg: ml_collections.ConfigDict) -> Path:
    """`synth-a2e-data`: the procedural FLAME head (written once) and motion-only identities
    first .. first+identities-1 (motion/synth_motion.py) under `out`, settings from a
    data_synth config."""
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame
    from flashtalker_jax.motion.synth_motion import write_motion_identity
    from flashtalker_jax.utils.progress import progress

    out = Path(out)
    if not (out / "flame" / "generic_model.pkl").is_file():
        write_procedural_flame(out, seed=seed)
    model = load_flame_model(out / "flame")
    for index in progress(range(first, first + identities), desc="identities", unit="id"):
        write_motion_identity(out / f"id{index:03d}", model, index, seed, seconds, cfg)
    return out


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1, default=float))


def pretrain(config: ml_collections.ConfigDict, data: str, out: str, resume: bool = False,
             restart: bool = False) -> dict:
    from flashtalker_jax.train.trainer import fit

    config.task.dataset = str(data)
    start = time.perf_counter()
    motion = tasks.build(config.task)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = fit(motion.task, config, out, resume=resume, restart=restart)
    train_seconds = time.perf_counter() - start
    names = [i.name for i in motion.identities]
    tasks.save_motion_model(out, config.task, tasks.params_of(result.state), motion, names)
    built = tasks.is_built_dataset(data)   # grain over build-tfds records: sentences stay on disk
    summary = {"status": result.status, "steps": result.step, "identities": len(names),
               "input": "tfds" if built else "folders",
               "train_sentences": None if built else len(tasks.training_sentences(motion.identities, "train")),
               "data_seconds": load_seconds, "train_seconds": train_seconds,
               "devices": jax.device_count(), "platform": jax.devices()[0].platform}
    _write_json(Path(out) / "summary.json", summary)
    return summary


def hold_out_validation(identities: list[Identity]) -> list[Identity]:
    """Keep the val split when present; else move each identity's last training sentence there."""
    out = []
    for ident in identities:
        splits = dict(ident.splits)
        if not splits.get("val"):
            if len(splits["train"]) < 2:
                raise InputFileError(ident.name, "needs a val split or at least 2 training sentences "
                                     "for early stopping")
            splits["val"], splits["train"] = splits["train"][-1:], splits["train"][:-1]
        out.append(dataclasses.replace(ident, splits=splits))
    return out


class EarlyStop(Exception):
    pass


class HeldOutLoss:
    """The training loss on fixed windows of the val sentences with fixed noise keys (lower is
    better). Cheap, but for the diffusion prior it is the denoising loss at random noise
    levels, which need not follow what sampling produces."""
    higher_is_better = False

    def __init__(self, motion: tasks.MotionTask, task, early):
        graphdef = nnx.graphdef(nnx.eval_shape(lambda: motion.task.make_model(nnx.Rngs(0))))
        sentences = [s for i in motion.identities for s in i.splits["val"]]
        context = task.model.context if task.name == "a2e_prior" else 0
        crops = CropIterator(sentences, task.batch_size, task.model.window, context, task.min_frames,
                             task.model.steps_per_frame, 12345, motion.motion_norm, motion.audio_norm)
        self.batches = [next(crops) for _ in range(early.eval_batches)]
        loss_fn = motion.task.loss_fn
        self._loss = jax.jit(lambda params, rest, batch, key: loss_fn(nnx.merge(graphdef, params, rest), batch, key)[0])

    def __call__(self, params, rest) -> float:
        keys = [jax.random.key(1000 + i) for i in range(len(self.batches))]
        return float(np.mean([self._loss(params, rest, b, k) for b, k in zip(self.batches, keys)]))


class HeldOutOpening:
    """eval-a2e's mouth-opening Pearson correlation on the val sentences (higher is better):
    the model is run as at inference (DDIM + guidance for the prior, fixed seeds 0..seeds-1,
    averaged), so the criterion is the quantity the targets are stated in. The ground
    truth's meshes are computed once, here."""
    higher_is_better = True

    def __init__(self, loaded: tasks.LoadedMotionModel, motion: tasks.MotionTask, seeds: int):
        from flashtalker_jax.motion import evaluate as ev
        from flashtalker_jax.motion.inference import Predictor

        self.loaded, self._ev = loaded, ev
        self.predictor = Predictor(loaded)
        self.mesh_fn = ev.make_mesh_fn(motion.flame)
        self.lip_ids = tasks.region_ids(loaded.task, "lips")
        self.upper_ids = tasks.region_ids(loaded.task, "upper_face")
        self.seeds = seeds if loaded.kind == "a2e_prior" else 1   # the others are deterministic
        self.targets = [(ident, tasks.style_input(loaded.kind, motion.flame, ident, loaded.motion_norm),
                         ev.ground_truth(ident, self.mesh_fn, "val"))
                        for ident in motion.identities]

    def __call__(self, params, rest) -> float:
        nnx.update(self.loaded.model, params, rest)
        self.predictor.refresh()
        scores = []
        for ident, template, truth in self.targets:
            for seed in range(self.seeds):
                motion = self._ev.predict_sentences(self.predictor, ident.index, template, ident.splits["val"], seed)
                v, opening = self.mesh_fn(motion, ident.shape)
                pearson = self._ev.compare(v, truth.vertices, opening, truth.opening, truth.neutral,
                                           self.lip_ids, self.upper_ids)["opening_pearson"]
                scores.append(-1.0 if pearson is None else pearson)   # a frozen mouth scores worst
        return float(np.mean(scores))


class HeldOutTracker:
    """after_step hook: scores the model every `eval_every` steps, keeps the best parameters,
    raises EarlyStop after `patience` evaluations without gain (by more than min_delta)."""

    def __init__(self, score_fn, early, initial_params: dict):
        self.score_fn, self.early = score_fn, early
        self.sign = 1.0 if score_fn.higher_is_better else -1.0
        self.best_params, self.best_step, self.best = initial_params, 0, None
        self.bad = 0
        self.history = []

    def record(self, step: int, score: float, params_fn) -> None:
        self.history.append({"step": step, self.early.criterion: score})
        if self.best is None or self.sign * (score - self.best) > self.early.min_delta:
            self.best, self.best_step, self.bad = score, step, 0
            if step > 0:
                self.best_params = params_fn()
        else:
            self.bad += 1
            if self.bad >= self.early.patience:
                raise EarlyStop

    def __call__(self, step: int, state) -> None:
        if step % self.early.eval_every:
            return
        self.record(step, self.score_fn(state.params, state.rest), lambda: tasks.params_of(state))

    def restore(self, summary: dict, best_params: dict) -> None:
        """Continue a preempted run: its history, best score and best parameters (saved as the
        run's summary.json and model.npz); the patience count starts afresh."""
        self.history, self.best, self.best_step = summary["history"], summary["best_score"], summary["best_step"]
        self.best_params = best_params


def heldout_score(criterion: str, prior_model: tasks.LoadedMotionModel, motion: tasks.MotionTask, task, early):
    if criterion == "loss":
        return HeldOutLoss(motion, task, early)
    if criterion == "opening_pearson":
        return HeldOutOpening(prior_model, motion, early.seeds)
    raise ConfigError(f"early_stop.criterion={criterion!r}: use opening_pearson or loss")


def adapt(config: ml_collections.ConfigDict, prior: str, data: str, out: str, resume: bool = False,
          restart: bool = False) -> dict:
    from flashtalker_jax.train.trainer import fit

    prior_model = tasks.load_motion_model(prior)
    task = prior_model.task
    task.dataset = str(data)
    task.max_identities = -1
    task.batch_size, task.min_frames = config.task.batch_size, config.task.min_frames
    task.data_seed = config.task.data_seed
    task.freeze = tuple(config.task.freeze[task.name])
    identities = hold_out_validation(tasks.load_identities(task, prior_model.identities))
    motion = tasks.build(task, prior_model.identities, (prior_model.motion_norm, prior_model.audio_norm), identities)
    run = ml_collections.ConfigDict({"task": task, "optim": config.optim, "train": config.train,
                                     "mesh": config.mesh, "early_stop": config.early_stop})
    run.train.init_from = str(Path(prior).absolute() / "checkpoints")
    _, prior_params, prior_rest = nnx.split(prior_model.model, nnx.Param, ...)
    score_fn = heldout_score(config.early_stop.criterion, prior_model, motion, task, config.early_stop)
    tracker = HeldOutTracker(score_fn, config.early_stop, tasks.read_params(Path(prior)))
    previous = Path(out) / "summary.json"
    if resume and previous.is_file():   # written by the preempted run, with its best model.npz
        tracker.restore(json.loads(previous.read_text()), tasks.read_params(Path(out)))
    else:
        tracker.record(0, score_fn(prior_params, prior_rest), lambda: None)
    start = time.perf_counter()
    status = "completed"
    try:
        result = fit(motion.task, run, out, resume=resume, restart=restart, after_step=tracker)
        status = result.status
    except EarlyStop:
        status = "early_stopped"
    seconds = time.perf_counter() - start
    tasks.save_motion_model(out, task, tracker.best_params, motion, prior_model.identities)
    summary = {"status": status, "criterion": config.early_stop.criterion, "best_step": tracker.best_step,
               "best_score": tracker.best, "history": tracker.history, "train_seconds": seconds,
               "identities": [i.name for i in identities],
               "embedding_rows": [i.index for i in identities]}
    _write_json(Path(out) / "summary.json", summary)
    return summary


def evaluate(model_run: str, data: str, report: str | None, baseline: str | None = None,
             audio_files: tuple[str, ...] = (), seed: int = 0, sample_steps: int | None = None,
             guidance: float | None = None, split: str = "test") -> dict:
    """Held-out metrics for the model (and an optional baseline run) plus real-audio traces."""
    from flashtalker_jax.motion import evaluate as ev
    from flashtalker_jax.motion.inference import Predictor

    loaded = tasks.load_motion_model(model_run)
    task = loaded.task
    task.dataset, task.max_identities = str(data), -1
    identities = tasks.load_identities(task, loaded.identities)
    flame = tasks.load_flame_for(task, identities)
    lip_ids, upper_ids = tasks.region_ids(task, "lips"), tasks.region_ids(task, "upper_face")
    mesh_fn = ev.make_mesh_fn(flame)
    models = {loaded.kind: (loaded, Predictor(loaded, sample_steps, guidance))}
    if baseline:
        other = tasks.load_motion_model(baseline)
        models[f"baseline_{other.kind}"] = (other, Predictor(other, sample_steps, guidance))
    out_dir = Path(report).with_suffix("") if report else Path(model_run) / "eval"
    mean_motion = ev.training_mean_motion(identities)
    per_identity, pngs = {}, []
    for ident in identities:
        predictors = {}
        for name, (m, predictor) in models.items():
            row = m.identities.index(ident.name) + 1 if ident.name in m.identities else 0
            template = tasks.style_input(m.kind, flame, ident, m.motion_norm)
            predictors[name] = (predictor, row, template)
        results, curves = ev.evaluate_identity(ident, predictors, flame, mesh_fn, lip_ids, upper_ids,
                                               mean_motion, seed, split)
        png = out_dir / f"opening_{ident.name}.png"
        ev.plot_openings(png, {k: v for k, v in curves.items() if k != "static_mean_face"},
                         f"{ident.name}: held-out mouth opening (predicted vs ground truth)")
        pngs.append(str(png))
        per_identity[ident.name] = {"embedding_row": ident.index, "seen_in_pretraining": ident.index > 0,
                                    "metrics": results}
    methods = list(next(iter(per_identity.values()))["metrics"])
    summary = {m: _mean_metrics([v["metrics"][m] for v in per_identity.values()]) for m in methods}
    real, reference = [], None
    if audio_files:
        ident = identities[0]
        # read_identity refused folders without audio, so the index names the file; the
        # model was trained at the folder's fps, so real audio is driven at it too.
        folder = read_vhap_index(identity_folders(data)[0])
        reference = ev.ground_truth_openings(ident, folder.audio_path, mesh_fn, folder.fps)
        m, predictor = models[loaded.kind]
        template = tasks.style_input(m.kind, flame, ident, m.motion_norm)
        fn = tasks.feature_extractor(task).features
        for path in audio_files:
            png = out_dir / f"real_{Path(path).stem}.png"
            real.append(ev.evaluate_real_audio(Path(path), predictor, fn, mesh_fn, ident.shape, ident.index,
                                               template, seed, png, folder.fps))
    result = {"model": str(model_run), "kind": loaded.kind, "baseline": baseline, "data": str(data),
              "split": split, "seed": seed,
              "sampling": {"steps": sample_steps or task.sample.steps,
                           "guidance": task.sample.guidance if guidance is None else guidance},
              "conventions": {
                  "lve_max_l2_mm": "mean over frames of the max over FLAME 'lips' vertices of the L2 error, mm",
                  "lve_max_sq_mm2": "same with the squared L2 error, mm^2 (FaceFormer/CodeTalker style)",
                  "opening": "FLAME inner-lip landmark distance, mm; lag > 0 = prediction late, frames",
                  "fdd_mm2": "CodeTalker upper-face dynamics deviation on 'upper_face', signed",
                  "pose": "identity shape, zero head pose: only expression and jaw differ"},
              "summary": summary, "identities": per_identity, "pngs": pngs, "real_audio": real,
              "real_audio_reference": reference}
    return result


def _mean_metrics(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
