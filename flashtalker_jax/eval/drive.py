"""What drives the avatar in an evaluation, and the ground truth it is compared with.

Reference: frames of the avatar's identity folder (VHAP) at chosen indices, one camera, in
time order: composited ground-truth images, cameras, tracked FLAME parameters and the
avatar's per-frame audio drive. Self-reenactment uses the held-out split; cross-reenactment
uses the frames whose head pose is replayed under the new audio, as `speak` replays them
(forward then backward, `pingpong`), so the reference video has the same head motion.
Without the identity's folder, cross-reenactment replays the pose track and camera stored
in the avatar folder (`stored_reference`, exactly what `speak` renders), with no frames.

Drivings (FLAME parameters per reference frame, cameras of the reference):
- tracked:    the reference's own tracked parameters (self only);
- a2e:        expression + jaw predicted by a motion run (`pipeline.motion.motion_from_run`)
              from the held-out frames' own audio (self) or from another clip (cross),
              head pose from the reference track.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from flashtalker_jax.audio.io import SAMPLE_RATE
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.eval.render import DRIVE_KEYS

POSE_KEYS = ("rotation", "neck_pose", "eyes_pose", "translation")


@dataclasses.dataclass(frozen=True)
class Reference:
    """T frames of one identity: gt (T, S, S, 3) float [0, 1] (None: no video, only the
    avatar folder's stored track), viewmat (T, 4, 4), K (T, 3, 3) at size S, track
    {DRIVE_KEYS (T, k)[, audio (T, A)]}, timesteps (T,), folder `root`."""
    root: Path
    gt: np.ndarray | None
    viewmat: np.ndarray
    K: np.ndarray
    track: dict
    timesteps: np.ndarray
    fps: float
    head_masks: np.ndarray | None = None    # (T, S, S) bool, real-footage avatars only
    person_masks: np.ndarray | None = None  # (T, S, S) bool, real-footage avatars only


@dataclasses.dataclass(frozen=True)
class Driving:
    """One row of the table: `track` {DRIVE_KEYS (T, k)[, audio]} rendered with the
    reference cameras; `waveform` (16 kHz mono) of the driving speech, when there is one;
    `source_track`: the driving clip's own tracked expression/jaw (T, k), when it has one."""
    name: str
    track: dict
    waveform: np.ndarray | None = None
    source_track: dict | None = None


def heldout_indices(seq, splits: tuple[str, ...], max_frames: int = 0) -> np.ndarray:
    """Held-out frames (first non-empty split of `splits`) of the first camera, time order."""
    from flashtalker_jax.avatar.frames import split_indices

    held = seq.camera_rows(rows=split_indices(seq, splits))
    return held[:max_frames] if max_frames > 0 else held


def pingpong(n_frames: int, n: int) -> np.ndarray:
    """Row of each of n_frames frames when n rows are played forward, backward, forward...
    (composite/schedule.py, the rule of speak's pose replay and body loop)."""
    from flashtalker_jax.composite.schedule import pingpong_indices

    return pingpong_indices(0, n_frames, n)


def load_reference(seq, indices: np.ndarray, size: int, task_cfg, audio_dim: int) -> Reference:
    """The frames `indices` of a VHAP sequence, as the avatar was trained to see them; for
    an avatar trained on real footage (composite/real.py) the frames themselves, with their
    head and person masks (what the compositor and the region scores need)."""
    from flashtalker_jax.avatar.frames import audio_frame_features, composite_target, load_frames, load_masks
    from flashtalker_jax.composite.real import is_real_avatar

    unique, inverse = np.unique(indices, return_inverse=True)  # cross replays frames
    audio = audio_frame_features(seq) if audio_dim else None
    real = is_real_avatar(task_cfg)
    frames = load_frames(seq, unique, size, audio, "head" if real else task_cfg.get("mask_source", "fg"))
    head = person = None
    if real:
        gt = frames["image"].astype(np.float32) / 255.0
        head = (frames["mask"] > 127)[inverse]
        person = (load_masks(seq, unique, size, "fg") > 127)[inverse]
    else:
        background = tuple(task_cfg.background)
        gt = np.stack([np.asarray(composite_target({"image": frames["image"][i:i + 1],
                                                    "mask": frames["mask"][i:i + 1]}, background))[0]
                       for i in range(len(unique))])
    track = {k: frames[f"flame_{k}"] for k in DRIVE_KEYS}
    if audio_dim:
        track["audio"] = frames["audio"]
    return Reference(Path(seq.root), gt[inverse], frames["viewmat"][inverse], frames["K"][inverse],
                     {k: v[inverse] for k, v in track.items()}, seq.timesteps[indices], float(seq.fps),
                     head, person)


def stored_reference(avatar_dir, n_frames: int, size: int, fps: float) -> Reference:
    """n_frames of the avatar folder's own pose track (track.npz) played forward then
    backward, from its stored camera (view.npz) at size S: what `speak` renders, without
    ground-truth frames (gt None)."""
    from flashtalker_jax.avatar.export import read_replay, view_at

    view, track = read_replay(avatar_dir)
    rows = pingpong(n_frames, len(track["timesteps"]))
    viewmat, K = view_at(view, size)
    return Reference(Path(avatar_dir), None, np.repeat(viewmat[None], n_frames, 0),
                     np.repeat(K[None], n_frames, 0), {k: track[k][rows] for k in DRIVE_KEYS},
                     track["timesteps"][rows], float(fps))


def _collect(result) -> dict[str, np.ndarray]:
    """A MotionFn's output as one dict: a dict already, or chunks of consecutive frames."""
    if isinstance(result, dict):
        return result
    chunks = list(result)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def predict_track(motion_fn_for, waveform: np.ndarray, poses: dict, n_expr: int,
                  audio_rows: np.ndarray | None) -> dict:
    """Expression/jaw from a motion run for a 16 kHz waveform, head pose `poses` (T, k).

    motion_fn_for(poses) -> MotionFn (pipeline.motion.motion_from_run with its run bound)."""
    n = next(iter(poses.values())).shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "drive.wav"
        soundfile.write(wav, waveform, SAMPLE_RATE)
        track = _collect(motion_fn_for(poses)(wav, n))
    for key in POSE_KEYS:  # the run must replay exactly the poses it was given
        if not np.allclose(track[key], poses[key]):
            raise RuntimeError(f"motion run replayed {key} in another order than given")
    track = {k: np.asarray(track[k], np.float32)[:, :n_expr] if k == "expr" else
             np.asarray(track[k], np.float32) for k in DRIVE_KEYS}
    if audio_rows is not None:
        track["audio"] = audio_rows
    return track


def segments(timesteps: np.ndarray) -> list[np.ndarray]:
    """Positions of runs of consecutive timesteps (each run gets its own audio clip)."""
    breaks = np.flatnonzero(np.diff(timesteps) != 1) + 1
    return np.split(np.arange(len(timesteps)), breaks)


def frames_audio(seq, timesteps: np.ndarray) -> np.ndarray:
    """16 kHz samples covering frames timesteps[0] .. timesteps[-1] (consecutive)."""
    if seq.audio is None:
        raise InputFileError(seq.root, "audio-driven rows need this folder's speech; it has no "
                                       "audio.wav", "add the audio, or drop --a2e (self) / the "
                                       "folder from --audio (cross)")
    if seq.sample_rate != SAMPLE_RATE:
        raise ValueError(f"read the folder at 16 kHz (read_vhap's default), not {seq.sample_rate}")
    per = seq.sample_rate / seq.fps
    clip = seq.audio[int(round(timesteps[0] * per)):int(round((timesteps[-1] + 1) * per))]
    return clip.astype(np.float32)


def self_a2e_driving(ref: Reference, seq, motion_fn_for, n_expr: int) -> Driving:
    """Expressions predicted from the held-out frames' own audio, run by run."""
    parts, waves = [], []
    for pos in segments(ref.timesteps):
        wave = frames_audio(seq, ref.timesteps[pos])
        poses = {k: ref.track[k][pos] for k in POSE_KEYS}
        audio_rows = ref.track["audio"][pos] if "audio" in ref.track else None
        parts.append(predict_track(motion_fn_for, wave, poses, n_expr, audio_rows))
        waves.append(wave)
    track = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return Driving("a2e", track, np.concatenate(waves))


def cross_source(path: Path, fps: float, n_expr: int, audio_dim: int, max_frames: int = 0) -> dict:
    """A driving clip for cross-reenactment: a speech file, or another identity's VHAP folder
    (its first run of consecutive frames, whose tracked expression/jaw is the clip's ground
    truth motion). {name, waveform (16 kHz), n_frames, audio_rows (n, A) | None, source_track}."""
    from flashtalker_jax.audio.io import load_audio
    from flashtalker_jax.data.vhap import read_vhap

    path = Path(path)
    if path.is_dir():
        seq = read_vhap(path)
        rows = seq.camera_rows()
        rows = rows[segments(seq.timesteps[rows])[0]]
        rows = rows[:max_frames] if max_frames > 0 else rows
        waveform = frames_audio(seq, seq.timesteps[rows])
        expr = np.zeros((len(rows), n_expr), np.float32)
        k = min(n_expr, seq.flame["expr"].shape[1])
        expr[:, :k] = seq.flame["expr"][rows, :k]
        source = {"expr": expr, "jaw_pose": seq.flame["jaw_pose"][rows].astype(np.float32)}
        audio_rows = None
        if audio_dim:
            from flashtalker_jax.avatar.frames import audio_frame_features

            audio_rows = audio_frame_features(seq)[seq.timesteps[rows]].astype(np.float32)
        return {"name": f"a2e:{path.name}", "waveform": waveform, "n_frames": len(rows),
                "audio_rows": audio_rows, "source_track": source}
    waveform = load_audio(path, SAMPLE_RATE)
    n_clip = int(round(len(waveform) / SAMPLE_RATE * fps))
    n = min(n_clip, max_frames) if max_frames > 0 else n_clip
    waveform = waveform[:int(round(n / fps * SAMPLE_RATE))]
    audio_rows = None
    if audio_dim:
        from flashtalker_jax.pipeline.avatar import audio_drive

        audio_rows = audio_drive(path, fps, n_clip)[:n]   # the whole clip's rows, first n frames
    return {"name": f"a2e:{path.name}", "waveform": waveform, "n_frames": n,
            "audio_rows": audio_rows, "source_track": None}


def cross_driving(source: dict, ref: Reference, motion_fn_for, n_expr: int) -> Driving:
    """The clip's predicted expressions on the reference's head poses (same length)."""
    poses = {k: ref.track[k] for k in POSE_KEYS}
    track = predict_track(motion_fn_for, source["waveform"], poses, n_expr, source["audio_rows"])
    return Driving(source["name"], track, source["waveform"], source["source_track"])


def cut_clip(clip: dict, n: int, fps: float) -> dict:
    """The first n frames of a `cross_source` clip (audio, drive rows and track alike)."""
    out = dict(clip, n_frames=n, waveform=clip["waveform"][:int(round(n / fps * SAMPLE_RATE))])
    if clip["audio_rows"] is not None:
        out["audio_rows"] = clip["audio_rows"][:n]
    if clip["source_track"] is not None:
        out["source_track"] = {k: v[:n] for k, v in clip["source_track"].items()}
    return out
