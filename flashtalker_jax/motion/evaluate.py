"""Held-out evaluation of motion models (`flashtalker eval-a2e`), with baselines.

Per identity, the held-out (test) sentences are predicted from their audio and compared
with the ground truth through FLAME (identity shape, zero head pose, so only expression
and jaw differ), using flashtalker_jax.metrics.lip:
- LVE, both conventions: `lve_max_l2_mm` (max over lip vertices of the per-frame L2 error,
  mean over frames, mm) and `lve_max_sq_mm2` (the same with squared errors, mm^2);
- MVE (mm), FDD (upper-face dynamics deviation, mm^2, signed);
- mouth opening (FLAME inner-lip landmark distance, mm): mean absolute error, Pearson
  correlation and the lag of the cross-correlation peak (frames; positive = prediction
  late), on the test sentences joined in order;
- blink statistics from the eye opening (mean eyelid landmark distance, mm): its error,
  correlation and spread, and blinks per minute of prediction and truth.
Baselines in the same report: the static mean face (every frame the mean motion of the
evaluated identities' train sentences: a property of the data, not of the model, whose
normalisation may come from elsewhere, e.g. a motion encoder's) and the ground truth
shifted by 2 frames (each sentence starts with its first frame repeated).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.audio.io import FPS, SAMPLE_RATE, load_audio
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import N_CONTOUR, mouth_opening
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.metrics import lip
from flashtalker_jax.motion.dataset import Identity
from flashtalker_jax.motion.inference import Predictor

MAX_LAG = 6
CHUNK = 64


# Upper/lower eyelid landmark pairs (iBUG-68 37-41, 38-40, 43-47, 44-46) in FLAME's static
# 51-point layout (index k - N_CONTOUR, flame/landmarks.py).
EYELID_PAIRS = tuple((a - N_CONTOUR, b - N_CONTOUR) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46)))
BLINK_FRACTION = 0.5   # a blink frame: eye opening below this fraction of the truth's median


def eye_opening(landmarks: jax.Array) -> jax.Array:
    """(B, L >= 51, 3) -> (B,) mean upper-to-lower eyelid distance (model units)."""
    gaps = [jnp.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1) for a, b in EYELID_PAIRS]
    return sum(gaps) / len(gaps)


@jax.jit
def _flame_chunk(model: FlameModel, motion, shape):
    """Vertices (n, V, 3) m, mouth and eye opening (n,) mm of [expr | jaw] frames, zero pose."""
    n = motion.shape[0]
    zeros3 = jnp.zeros((n, 3))
    params = FlameParams(shape=jnp.broadcast_to(shape, (n, shape.shape[0])), expr=motion[:, :-3],
                         rotation=zeros3, neck_pose=zeros3, jaw_pose=motion[:, -3:],
                         eyes_pose=jnp.zeros((n, 6)), translation=zeros3)
    out = flame_forward(model, params)
    return (out.vertices, mouth_opening(out.landmarks) * lip.MM_PER_M,
            eye_opening(out.landmarks) * lip.MM_PER_M)


def _flame_frames(flame: FlameModel, motion: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
    """_flame_chunk over CHUNK-frame pieces (one compiled shape for any length), joined."""
    t = motion.shape[0]
    padded = np.zeros((-(-t // CHUNK) * CHUNK, motion.shape[1]), np.float32)
    padded[:t] = motion
    parts = [_flame_chunk(flame, jnp.asarray(padded[i:i + CHUNK]), jnp.asarray(shape[:flame.n_shape]))
             for i in range(0, padded.shape[0], CHUNK)]
    return [np.concatenate([np.asarray(p[k]) for p in parts])[:t] for k in range(3)]


def make_mesh_fn(flame: FlameModel):
    """motion (T, P), shape (S,) -> vertices (T, V, 3) m, mouth opening (T,) mm."""
    return lambda motion, shape: tuple(_flame_frames(flame, motion, shape)[:2])


def blink_stats(pred_eye: np.ndarray, gt_eye: np.ndarray, fps: float = FPS) -> dict:
    """Eye opening (mm) of a prediction against the truth: mean absolute error, Pearson r
    (None when either is constant), standard deviation, and blinks per minute (runs of
    frames below BLINK_FRACTION of the truth's median opening) of both."""
    closed_below = BLINK_FRACTION * float(np.median(gt_eye))
    rate = lambda eye: float(np.sum(np.diff((eye < closed_below).astype(int), prepend=0) == 1)) * 60 * fps / len(eye)
    varies = float(np.std(pred_eye)) > 1e-4 and float(np.std(gt_eye)) > 1e-4
    return {"eye_opening_error_mm": float(np.mean(np.abs(pred_eye - gt_eye))),
            "eye_opening_pearson": float(np.corrcoef(pred_eye, gt_eye)[0, 1]) if varies else None,
            "eye_opening_std_mm": float(np.std(pred_eye)), "blinks_per_min": rate(pred_eye),
            "gt_blinks_per_min": rate(gt_eye)}


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def compare(pred_v, gt_v, pred_open, gt_open, neutral, lip_ids, upper_ids) -> dict:
    pv, gv = jnp.asarray(pred_v), jnp.asarray(gt_v)
    # A (numerically) constant curve has no correlation: report None, not rounding noise.
    varies = float(np.std(pred_open)) > 1e-4 and float(np.std(gt_open)) > 1e-4
    corr = lip.pearson(jnp.asarray(pred_open), jnp.asarray(gt_open)) if varies else jnp.nan
    finite = bool(np.isfinite(corr))
    lag = int(lip.peak_lag(jnp.asarray(pred_open), jnp.asarray(gt_open), MAX_LAG)) if finite else None
    return {"lve_max_l2_mm": _finite(lip.lve_max_l2_mm(pv, gv, lip_ids)),
            "lve_max_sq_mm2": _finite(lip.lve_max_sq_mm2(pv, gv, lip_ids)),
            "mve_mm": _finite(lip.mve_mm(pv, gv)),
            "fdd_mm2": _finite(lip.fdd_mm2(pv, gv, jnp.asarray(neutral), upper_ids)),
            "opening_error_mm": _finite(lip.opening_error(jnp.asarray(pred_open), jnp.asarray(gt_open))),
            "opening_pearson": _finite(corr), "opening_peak_lag": lag}


def shifted(motion: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.repeat(motion[:1], frames, axis=0), motion[:-frames]])


def predict_sentences(predictor: Predictor, row: int, template, sentences, seed: int) -> np.ndarray:
    """Motion of the sentences joined in order; sentence k is sampled with seed + k."""
    return np.concatenate([predictor(s.audio, row, seed + k, template) for k, s in enumerate(sentences)])


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One identity's `split` sentences joined in order, through FLAME."""
    motion: np.ndarray     # (T, P) [expr | jaw]
    vertices: np.ndarray   # (T, V, 3) m
    opening: np.ndarray    # (T,) mm
    neutral: np.ndarray    # (V, 3) zero motion


def ground_truth(ident: Identity, mesh_fn, split: str) -> GroundTruth:
    sentences = ident.splits[split]
    if not sentences:
        raise ValueError(f"identity {ident.name} has no {split} sentences")
    gt = np.concatenate([s.motion for s in sentences])
    gt_v, gt_open = mesh_fn(gt, ident.shape)
    neutral = mesh_fn(np.zeros((1, gt.shape[1]), np.float32), ident.shape)[0][0]
    return GroundTruth(gt, gt_v, gt_open, neutral)


def training_mean_motion(identities: list[Identity], split: str = "train") -> np.ndarray:
    """(P,) mean motion over every frame of the identities' `split` sentences."""
    frames = [s.motion for ident in identities for s in ident.splits.get(split, [])]
    if not frames:
        names = ", ".join(ident.name for ident in identities)
        raise ConfigError(f"no {split} sentences in {names}: the static-mean-face baseline of "
                          f"eval-a2e needs the evaluated identities' {split} split (--data)")
    return np.concatenate(frames).mean(0).astype(np.float32)


def evaluate_identity(ident: Identity, predictors: dict, flame: FlameModel, mesh_fn, lip_ids, upper_ids,
                      mean_motion: np.ndarray, seed: int, split: str = "test") -> tuple[dict, dict]:
    """Metrics per method for one identity, and the opening curves for plotting."""
    truth = ground_truth(ident, mesh_fn, split)
    sentences, gt = ident.splits[split], truth.motion
    preds = {"gt_shift_2": np.concatenate([shifted(s.motion, 2) for s in sentences]),
             "static_mean_face": np.broadcast_to(mean_motion, gt.shape).astype(np.float32)}
    seconds = {}
    for name, (predictor, row, template) in predictors.items():
        start = time.perf_counter()
        preds[name] = predict_sentences(predictor, row, template, sentences, seed)
        seconds[name] = time.perf_counter() - start
    results, curves = {}, {"ground_truth": truth.opening}
    gt_eye = _flame_frames(flame, gt, ident.shape)[2]
    for name, motion in preds.items():
        v, opening, eye = _flame_frames(flame, motion, ident.shape)
        results[name] = compare(v, truth.vertices, opening, truth.opening, truth.neutral, lip_ids, upper_ids)
        results[name].update(blink_stats(eye, gt_eye))
        if name in seconds:
            results[name]["predict_seconds"] = seconds[name]
            results[name]["frames"] = int(gt.shape[0])
        curves[name] = opening
    return results, curves



def plot_openings(path: Path, curves: dict[str, np.ndarray], title: str, fps: float = FPS) -> None:
    """PNG of mouth opening (mm) over time, one line per curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3.2), dpi=100)
    for name, curve in curves.items():
        style = dict(color="black", lw=2.0) if name == "ground_truth" else dict(lw=1.2)
        ax.plot(np.arange(len(curve)) / fps, curve, label=name, **style)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening (mm)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def speech_frames(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: float,
                  threshold_db: float = -35.0) -> np.ndarray:
    """(T,) bool: frame RMS within threshold_db of the clip's 95th-percentile frame RMS."""
    per = sample_rate / fps
    rms = np.array([np.sqrt(np.mean(waveform[int(i * per):int((i + 1) * per)] ** 2) + 1e-12)
                    for i in range(num_frames)])
    return 20 * np.log10(rms / np.percentile(rms, 95)) > threshold_db


def opening_by_speech(opening: np.ndarray, speaking: np.ndarray) -> dict:
    """Mean mouth opening (mm) in speech and in silent frames, and the silent frames' 90th percentile."""
    silent = opening[~speaking]
    return {"speech_fraction": float(speaking.mean()),
            "opening_speech_mean_mm": float(opening[speaking].mean()) if speaking.any() else None,
            "opening_silence_mean_mm": float(silent.mean()) if silent.size else None,
            "opening_silence_p90_mm": float(np.percentile(silent, 90)) if silent.size else None}


def ground_truth_openings(ident: Identity, audio_path: Path, mesh_fn, fps: float) -> dict:
    """The same speech/silence statistics on an identity's own ground truth (every split, in
    frame order, against its own audio): what "closed in silences" looks like for this face."""

    sentences = sorted((s for split in ident.splits.values() for s in split), key=lambda s: s.start)
    frames = np.concatenate([s.start + np.arange(s.motion.shape[0]) for s in sentences])
    _, opening = mesh_fn(np.concatenate([s.motion for s in sentences]), ident.shape)
    speaking = speech_frames(load_audio(audio_path, SAMPLE_RATE), SAMPLE_RATE, int(frames.max()) + 1, fps)[frames]
    return {"identity": ident.name, **opening_by_speech(opening, speaking)}


def evaluate_real_audio(path: Path, predictor: Predictor, feature_fn, mesh_fn, shape: np.ndarray,
                        row: int, template, seed: int, png: Path, fps: float) -> dict:
    """Mouth opening on real speech: PNG trace and mean opening in silent vs speech frames."""

    start = time.perf_counter()
    features = feature_fn(path, fps)
    motion = predictor(features, row, seed, template)
    seconds = time.perf_counter() - start
    _, opening = mesh_fn(motion, shape)
    waveform = load_audio(path, SAMPLE_RATE)
    speaking = speech_frames(waveform, SAMPLE_RATE, opening.shape[0], fps)
    plot_openings(png, {"predicted": opening, "speech (1) / silence (0) x max": speaking * opening.max()},
                  f"{path.name}: predicted mouth opening")
    return {"file": str(path), "frames": int(opening.shape[0]), "predict_seconds": seconds,
            **opening_by_speech(opening, speaking), "png": str(png)}
