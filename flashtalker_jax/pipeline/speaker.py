"""An avatar and a motion model loaded once, ready to speak any number of audio files.

`load_speaker(avatar, a2e)` (a2e None: the bundled motion prior, procedural-head avatars
only; `motion_run` says which run is used) wires pipeline/avatar.py (render stage) and pipeline/motion.py
(motion stage) into pipeline/stream.py; `speaker.speak(audio, out)` runs one file.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from flashtalker_jax.audio.io import FPS
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.pipeline.avatar import LoadedAvatar, load_avatar_renderer, with_audio_drive
from flashtalker_jax.pipeline.motion import ANY_STYLE, motion_from_run, pose_track, replay_poses
from flashtalker_jax.pipeline.stream import MotionFn, RenderFn, SpeakResult, speak

POSE_MODES = ("replay", "static", "generated")

# What --save-params writes beside mouth_opening_mm: the FLAME parameters per frame.
FLAME_KEYS = ("expr", "jaw_pose", "rotation", "neck_pose", "eyes_pose", "translation")


@dataclasses.dataclass(frozen=True)
class Speaker:
    avatar: LoadedAvatar
    motion_fn: MotionFn
    fps: float
    batch_size: int
    render_fn: RenderFn              # the head alone, or the full frame (composite/real.py)
    width: int
    height: int
    compositing: str | None = None   # None (head only), or how the head joins the frame

    def speak(self, audio_path: str | os.PathLike, out_path: str | os.PathLike,
              save_params: str | os.PathLike | None = None, show_progress: bool = True) -> SpeakResult:
        return speak(audio_path, out_path, motion_fn=self.motion_fn, render_fn=self.render_fn,
                     width=self.width, height=self.height, fps=self.fps,
                     batch_size=self.batch_size, save_params=save_params, param_keys=FLAME_KEYS,
                     show_progress=show_progress)


def motion_run(avatar_dir: str | Path, a2e_run: str | Path | None) -> tuple[Path, str | None]:
    """(the motion run to use, a note saying so when it is the bundled prior). `a2e_run`
    None: the bundled motion prior (pipeline/bundled.py), and only when the avatar is on the
    procedural head it was trained for (ConfigError naming --a2e otherwise)."""
    if a2e_run is not None:
        return Path(a2e_run), None
    from flashtalker_jax.pipeline.bundled import BUNDLED_NAME, bundled_run, check_procedural_head, read_bundle

    run = bundled_run()
    bundle = read_bundle(run)
    check_procedural_head(avatar_dir, bundle)
    return run, (f"no --a2e: using the {BUNDLED_NAME} ({bundle['kind']}, {run}) for this procedural-head "
                 f"avatar (procedural FLAME seed {bundle['flame_seed']})")


def load_speaker(avatar_dir: str | Path, a2e_run: str | Path | None, *, pose_from: str | Path | None = None,
                 still: bool = False, batch_size: int = 16, size: int | None = None,
                 backend: str | None = None, fps: float = FPS, seed: int = 0,
                 sample_steps: int | None = None, style: str = ANY_STYLE, head_only: bool = False,
                 pose: str = "replay") -> Speaker:
    """`pose_from`: VHAP folder whose tracked head pose is replayed (default: the identity's
    own, stored in the avatar folder); `still`: hold its first frame's pose instead; `style`:
    the motion run's speaking style (pipeline/motion.style_row). Reads
    only the avatar folder and the motion run (and `pose_from`): they may be copied
    anywhere, and the training data may be gone. `a2e_run` None: the bundled prior
    (`motion_run`).

    An avatar trained on real footage (configs/adapt_real.py) speaks in the person's own
    frame (composite/real.py: its body loop and body inpainter, from `flashtalker
    adapt-body`), the head pose replayed with the body loop's frames; `head_only` keeps
    the head alone on black at the avatar's size.

    `pose`: "replay" (the tracked pose, as above), "static" (= still) or "generated" (head
    pose from the audio, AVATAR/pose of `flashtalker adapt-pose`: `with_generated_pose`).
    In the full frame of a real-footage avatar a generated pose chooses the body-loop
    frames instead of the ping-pong: those whose recorded pose follows it
    (composite/real.LoopFollower; the head keeps the generated rotation on the chosen
    frame's translation)."""
    if pose not in POSE_MODES:
        raise ConfigError(f"pose={pose!r}: use one of {POSE_MODES}")
    if pose == "generated" and pose_from:
        raise ConfigError("--pose generated makes the head pose from the audio: drop --pose-from")
    still = still or pose == "static"
    a2e_run, _ = motion_run(avatar_dir, a2e_run)
    avatar = load_avatar_renderer(avatar_dir, size=size, backend=backend)
    full_frame = None if head_only else load_full_frame(avatar, pose_from, still, size)
    if full_frame is not None:
        from flashtalker_jax.composite.body import pose_track_for_loop

        poses = replay_poses(pose_track_for_loop(avatar.track, full_frame.body.frame_indices))
    else:
        poses = pose_track(pose_from, still=still) if pose_from else replay_poses(avatar.track, still)
    motion_fn = motion_from_run(a2e_run, poses, fps, avatar.n_expr, style=style, seed=seed,
                                sample_steps=sample_steps)
    if pose == "generated":
        from flashtalker_jax.motion.pose.folder import load_pose_generator

        follow = None if full_frame is None else loop_follower(avatar, poses)
        motion_fn = with_generated_pose(motion_fn, load_pose_generator(avatar.avatar_dir), fps, follow)
    if avatar.audio_dim:
        motion_fn = with_audio_drive(motion_fn, fps)
    if full_frame is None:
        return Speaker(avatar, motion_fn, fps, batch_size, avatar.render_fn, avatar.size, avatar.size)
    if pose != "generated":   # a generated pose's chunks carry the loop_index LoopFollower chose
        from flashtalker_jax.composite.real import with_loop_index

        motion_fn = with_loop_index(motion_fn, len(full_frame.body))
    width, height = full_frame.size
    return Speaker(avatar, motion_fn, fps, batch_size, full_frame, width, height, full_frame.compositor.method)


def loop_follower(avatar: LoadedAvatar, recorded: dict):
    """composite/real.LoopFollower over the body loop's recorded poses (loop order), its
    pixel scale from the avatar's own FLAME shape and camera."""
    from flashtalker_jax.avatar.export import view_at
    from flashtalker_jax.composite.real import LoopFollower, pose_pixels

    viewmat, K = view_at(avatar.view, avatar.size)
    return LoopFollower(recorded, pose_pixels(avatar.flame, np.asarray(viewmat), np.asarray(K),
                                              recorded["translation"]))


def with_generated_pose(motion_fn: MotionFn, generator, fps: float,
                        follow: Callable[[dict], dict] | None = None) -> MotionFn:
    """A MotionFn whose chunks carry the head pose generated from the audio (the generator's
    keys: rotation, translation, neck_pose when its identity moves it) in place of the
    replayed one; eyes stay replayed (gaze is not head pose). `follow`: the whole clip's
    generated pose -> the per-frame arrays the chunks carry instead (composite/real.
    LoopFollower: the pose as rendered + the body loop's loop_index).

    A wrapper rather than a pose track handed to motion_from_run: the track depends on the
    audio, which load_speaker does not have, and the wrapped stream keeps its chunking (the
    pose of the whole clip is one retrieval, milliseconds per minute of audio, and the loop
    schedule one dynamic programme, ~0.2 s per minute, both computed before the first
    chunk)."""

    def generated(audio, n_frames: int):
        poses = generator.generate(audio, n_frames, fps)
        if follow is not None:
            poses = follow(poses)
        start = 0
        for chunk in motion_fn(audio, n_frames):
            t = next(iter(chunk.values())).shape[0]
            chunk.update({k: v[start:start + t] for k, v in poses.items()})
            start += t
            yield chunk

    return generated


def load_full_frame(avatar: LoadedAvatar, pose_from, still: bool, size: int | None):
    """composite/real.FullFrame for an avatar trained on real footage; None for one whose
    render is the whole picture (procedural identities)."""
    from flashtalker_jax.composite.body import read_body_loop
    from flashtalker_jax.composite.real import BODY_DIR, FullFrame, is_real_avatar, load_compositor
    from flashtalker_jax.errors import ConfigError

    if not is_real_avatar(avatar.task_cfg):
        return None
    resized = size is not None and size != avatar.size   # the body loop is at the avatar's size
    conflicts = [name for name, given in (("--pose-from", pose_from), ("--still", still), ("--size", resized)) if given]
    if conflicts:
        raise ConfigError(f"{', '.join(conflicts)} cannot be used for the full frame of a real-footage avatar "
                          "(the head pose and size come from its body loop): add --head-only")
    compositor = load_compositor(avatar.avatar_dir, require_inpainter=True)
    return FullFrame(avatar.render_head, compositor, read_body_loop(avatar.avatar_dir / BODY_DIR))
