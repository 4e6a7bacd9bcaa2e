"""`flashtalker eval-pose`: generated head pose vs replay vs static on an identity's held-out
frames, and on speech it was never recorded with.

Held-out (the tracked folder's test split, whose frames the pose database never saw): for
each contiguous test run, the real pose track is the ground truth and four tracks compete:
  generated  retrieval + Pose Refiner from the run's audio (refined here whatever the folder's
             task.refine, so the refiner is always scored) (the refiner's expression input is
             the run's tracked expression, standing in for the motion model's)
  retrieval  retrieval alone (the refiner's ablation)
  replay     what `speak` does today: the identity's recorded training poses from frame 0
  static     the first recorded pose held (`speak --pose static`)
scored by metrics/pose.py (Frechet distance of velocities, velocity / acceleration ratio,
beat alignment with the run's audio onsets, jitter, std ratio), in units of the database's
pose std. Scores of several runs are averaged weighted by their frame counts.

Other audio (`audio`): no ground truth, so the generated track is compared with the
identity's whole recorded train track (its own motion statistics).
"""
from __future__ import annotations

import os

import numpy as np

from flashtalker_jax.metrics import pose as pm
from flashtalker_jax.motion.pose.database import expression_matrix
from flashtalker_jax.motion.pose.folder import PoseGenerator
from flashtalker_jax.motion.pose.retrieval import normalise_audio

METHODS = ("generated", "retrieval", "replay", "static")


def recorded_poses(gen: PoseGenerator) -> np.ndarray:
    """(T, P) absolute train-split poses of the database (what replay plays)."""
    return gen.db.poses + gen.db.pose_mean


def replay_track(gen: PoseGenerator, n: int) -> np.ndarray:
    from flashtalker_jax.composite.schedule import pingpong_indices

    rec = recorded_poses(gen)
    return rec[pingpong_indices(0, n, rec.shape[0])]


def heldout_runs(gen: PoseGenerator, data_dir, split: str = "test", camera: int = 0):
    """[(real (T, P), frame audio (T, A), expression features (T, E), waveform)] per run."""
    from flashtalker_jax.audio.extractor import FeatureExtractor
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.motion.dataset import contiguous_runs

    seq = read_vhap(data_dir)
    rows = seq.camera_rows(camera)
    by_step = {int(t): r for r, t in zip(rows, seq.timesteps[rows])}
    feats = FeatureExtractor.load("log_mel").features(seq.audio_path, seq.fps)
    steps = gen.db.steps_per_frame
    runs = []
    for run in contiguous_runs(seq.split_timesteps(split)):
        run = np.asarray([t for t in run if int(t) in by_step])
        if len(run) < gen.db.window:
            continue
        idx = np.asarray([by_step[int(t)] for t in run])
        real = np.concatenate([np.asarray(seq.flame[k][idx], np.float32) for k in gen.pose_keys], 1)
        audio = normalise_audio(gen.db, feats[(steps * run[:, None] + np.arange(steps)).reshape(-1)])
        expr = expression_matrix(seq.flame["expr"][idx], seq.flame["jaw_pose"][idx], gen.db.expr.shape[1] - 3)
        runs.append((real, audio, expr, seq.audio_for_frames(int(run[0]), int(run[-1]) + 1), seq.sample_rate))
    return runs


def tracks_for(gen: PoseGenerator, audio: np.ndarray, expr: np.ndarray | None) -> dict[str, np.ndarray]:
    n = audio.shape[0]
    rec = recorded_poses(gen)
    return {"generated": gen.offsets(audio, expr, refine=True) + gen.db.pose_mean,
            "retrieval": gen.offsets(audio, expr, refine=False) + gen.db.pose_mean,
            "replay": replay_track(gen, n),
            "static": np.repeat(rec[:1], n, 0)}


def evaluate_heldout(gen: PoseGenerator, data_dir: str | os.PathLike, split: str = "test") -> dict:
    """{method: scores} averaged over the split's runs (module docstring)."""
    runs = heldout_runs(gen, data_dir, split)
    if not runs:
        from flashtalker_jax.errors import InputFileError

        raise InputFileError(data_dir, f"no {split} run of at least {gen.db.window} frames to evaluate on")
    totals, frames = {m: {} for m in METHODS}, 0
    real_steps = []
    for real, audio, expr, wave, sr in runs:
        onsets = pm.audio_onsets(wave, sr, gen.db.fps)
        for method, track in tracks_for(gen, audio, expr).items():
            for k, v in pm.pose_scores(track, real, onsets, gen.db.pose_std).items():
                totals[method][k] = totals[method].get(k, 0.0) + v * len(real)
        real_steps.append(np.abs(np.diff(real / gen.db.pose_std, axis=0)).max())
        frames += len(real)
    out = {m: {k: v / frames for k, v in s.items()} for m, s in totals.items()}
    out["ground_truth"] = {"beat_alignment": float(np.mean([pm.beat_alignment(pm.motion_beats(r, gen.db.pose_std),
                                                                               pm.audio_onsets(w, sr, gen.db.fps))
                                                             for r, _, _, w, sr in runs])),
                           "jitter": float(np.mean([pm.jitter(r, gen.db.pose_std) for r, *_ in runs]))}
    return {"frames": frames, "runs": len(runs), "scores": out}


def evaluate_audio(gen: PoseGenerator, audio_path: str | os.PathLike) -> dict:
    """Scores of the tracks for a speech file against the identity's recorded train motion."""
    from flashtalker_jax.audio.clip import open_clip
    from flashtalker_jax.audio.extractor import FeatureExtractor

    extractor = FeatureExtractor.load("log_mel")
    audio = normalise_audio(gen.db, extractor.features(audio_path, gen.db.fps))
    clip = open_clip(audio_path, extractor.config)
    onsets = pm.audio_onsets(clip.samples(extractor.sample_rate), extractor.sample_rate, gen.db.fps)
    rec = recorded_poses(gen)
    out = {}
    for method, track in tracks_for(gen, audio, None).items():
        scale = gen.db.pose_std
        out[method] = {"frechet_velocity": pm.frechet_distance(track, rec, scale),
                       "velocity_ratio": pm.mean_speed(track, scale) / pm.mean_speed(rec, scale),
                       "acceleration_ratio": pm.mean_speed(track, scale, 2) / pm.mean_speed(rec, scale, 2),
                       "beat_alignment": pm.beat_alignment(pm.motion_beats(track, scale), onsets),
                       "jitter": pm.jitter(track, scale),
                       "std_ratio": float(np.mean(track.std(0) / rec.std(0))),
                       "max_step": float(np.abs(np.diff(track / scale, axis=0)).max())}
    out["recorded"] = {"max_step": float(np.abs(np.diff(rec / gen.db.pose_std, axis=0)).max()),
                       "jitter": pm.jitter(rec, gen.db.pose_std)}
    return {"audio": str(audio_path), "frames": int(audio.shape[0]), "scores": out}
