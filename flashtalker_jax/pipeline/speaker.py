"""An avatar and a motion model loaded once, ready to speak any number of audio files.

`load_speaker(avatar, a2e)` (a2e None: the bundled motion prior, procedural-head avatars
only; `motion_run` says which run is used) wires pipeline/avatar.py (render stage) and pipeline/motion.py
(motion stage) into pipeline/stream.py; `speaker.speak(audio, out)` runs one file.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from flashtalker_jax.audio.io import FPS
from flashtalker_jax.pipeline.avatar import LoadedAvatar, load_avatar_renderer, with_audio_drive
from flashtalker_jax.pipeline.motion import ANY_STYLE, motion_from_run, pose_track, replay_poses
from flashtalker_jax.pipeline.stream import MotionFn, SpeakResult, speak

# What --save-params writes beside mouth_opening_mm: the FLAME parameters per frame.
FLAME_KEYS = ("expr", "jaw_pose", "rotation", "neck_pose", "eyes_pose", "translation")


@dataclasses.dataclass(frozen=True)
class Speaker:
    avatar: LoadedAvatar
    motion_fn: MotionFn
    fps: float
    batch_size: int

    def speak(self, audio_path: str | os.PathLike, out_path: str | os.PathLike,
              save_params: str | os.PathLike | None = None, show_progress: bool = True) -> SpeakResult:
        return speak(audio_path, out_path, motion_fn=self.motion_fn, render_fn=self.avatar.render_fn,
                     width=self.avatar.size, height=self.avatar.size, fps=self.fps,
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
                 sample_steps: int | None = None, style: str = ANY_STYLE) -> Speaker:
    """`pose_from`: VHAP folder whose tracked head pose is replayed (default: the identity's
    own, stored in the avatar folder); `still`: hold its first frame's pose instead; `style`:
    the motion run's speaking style (pipeline/motion.style_row). Reads
    only the avatar folder and the motion run (and `pose_from`): they may be copied
    anywhere, and the training data may be gone. `a2e_run` None: the bundled prior
    (`motion_run`)."""
    a2e_run, _ = motion_run(avatar_dir, a2e_run)
    avatar = load_avatar_renderer(avatar_dir, size=size, backend=backend)
    poses = pose_track(pose_from, still=still) if pose_from else replay_poses(avatar.track, still)
    motion_fn = motion_from_run(a2e_run, poses, fps, avatar.n_expr, style=style, seed=seed,
                                sample_steps=sample_steps)
    if avatar.audio_dim:
        motion_fn = with_audio_drive(motion_fn, fps)
    return Speaker(avatar, motion_fn, fps, batch_size)
