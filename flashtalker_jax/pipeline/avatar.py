"""The render stage of `speak`: FLAME parameters -> posed mesh -> avatar Gaussians -> frames.

Loads an avatar folder written by `flashtalker adapt` (avatar/export.py) as an inference
renderer (avatar/renderer.py) and renders it from the camera stored in the folder
(view.npz; the first frame of camera 0 of a VHAP folder when `data_dir` is given).
The folder's pose track (track.npz) comes with it, for the motion stage to replay. One
jitted function per batch size does FLAME, the Gaussian binding + offsets and the
rasterizer.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.flame.landmarks import mouth_opening
from flashtalker_jax.metrics.lip import MM_PER_M
from flashtalker_jax.pipeline.stream import RenderFn, Track

# What the head render reads from a speak batch (other rows, e.g. the body loop's frame
# index, are for the compositor).
HEAD_INPUTS = ("expr", "jaw_pose", "rotation", "neck_pose", "eyes_pose", "translation", "audio")


# batch -> (rgb (B, S, S, 3) float on the avatar's background, alpha (B, S, S), mouth mm (B,))
HeadFn = Callable[[Track], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class LoadedAvatar:
    render_fn: RenderFn
    size: int
    n_expr: int
    audio_dim: int          # per-frame log-mel drive width (0: the avatar takes no audio)
    track: dict             # the avatar folder's track.npz (pose track replayed by speak)
    view: dict              # the camera rendered from: viewmat, K (at width x height), width, height
    render_head: HeadFn     # the same render before uint8: what composite/ puts into a frame
    avatar_dir: Path
    task_cfg: object        # the avatar's saved task config (as load_renderer read it)
    flame: object           # its personalised FlameModel (shape baked in): what drives it


def view_camera(data_dir: Path, size: int, camera: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(viewmat (4, 4) world-to-camera OpenCV, K (3, 3) scaled to size x size) of the first
    frame of `camera` in a VHAP folder (what an avatar exported from it stores in view.npz)."""
    from flashtalker_jax.avatar.export import replay_view, view_at
    from flashtalker_jax.data.vhap import read_vhap

    return view_at(replay_view(read_vhap(data_dir), camera), size)


def to_uint8(rgb) -> np.ndarray:
    return np.asarray(jnp.round(jnp.clip(rgb, 0.0, 1.0) * 255.0).astype(jnp.uint8))


def load_avatar_renderer(avatar_dir: str | Path, data_dir: str | Path | None = None,
                         size: int | None = None, backend: str | None = None) -> LoadedAvatar:
    """`avatar_dir`: RUN/avatar or the run folder RUN; `data_dir`: a VHAP folder whose camera
    replaces the folder's. Render function for speak.stream: batch {expr, jaw_pose, rotation,
    neck_pose, eyes_pose, translation (B, k)[, audio (B, A)]} -> (uint8 (B, S, S, 3), mouth
    mm (B,))."""
    from flax import nnx

    from flashtalker_jax.avatar.export import read_replay, replay_view, resolve_avatar_dir, view_at
    from flashtalker_jax.avatar.renderer import AvatarRenderer, load_renderer, render
    from flashtalker_jax.flame.model import FlameParams

    renderer, task_cfg = load_renderer(avatar_dir, size=size, backend=backend)
    view, track = read_replay(resolve_avatar_dir(avatar_dir))
    if data_dir is not None:
        from flashtalker_jax.data.vhap import read_vhap

        view = replay_view(read_vhap(data_dir))
    size = renderer.settings.size
    viewmat, K = view_at(view, size)
    n_expr = int(renderer.model.flame.model().n_expr)
    graphdef, state = nnx.split(renderer.model)

    @jax.jit
    def frames(state, batch):
        params = FlameParams.from_track(batch)
        b = params.batch
        cams = (jnp.broadcast_to(viewmat, (b, 4, 4)), jnp.broadcast_to(K, (b, 3, 3)))
        result = render(AvatarRenderer(nnx.merge(graphdef, state), renderer.settings), params, *cams,
                        batch.get("audio"))
        return result.rgb, result.alpha, mouth_opening(result.flame.landmarks) * MM_PER_M

    def render_head(batch: Track):
        inputs = {k: jnp.asarray(v, jnp.float32) for k, v in batch.items() if k in HEAD_INPUTS}
        return frames(state, inputs)

    def render_fn(batch: Track):
        rgb, _, mouth = render_head(batch)
        return to_uint8(rgb), np.asarray(mouth)

    return LoadedAvatar(render_fn, size, n_expr, renderer.model.audio_dim, track, view, render_head,
                        resolve_avatar_dir(avatar_dir), task_cfg, renderer.model.flame.model())


def audio_drive(audio, fps: float, n_frames: int) -> np.ndarray:
    """Per-frame log-mel rows (n_frames, 2 (n_mels + 1)) as adaptation used them
    (avatar/frames.audio_frame_features). `audio`: a decoded `audio.clip.Clip` (its
    log-mel rows are reused) or an audio path."""
    from flashtalker_jax.audio.clip import open_clip
    from flashtalker_jax.pipeline.motion import fit_length

    rows = open_clip(audio).log_mel(fps)
    return fit_length(rows[: rows.shape[0] // 2 * 2].reshape(rows.shape[0] // 2, -1), n_frames)


def with_audio_drive(motion_fn: Callable, fps: float) -> Callable:
    """Wrap a MotionFn so each chunk of its track also carries the avatar's per-frame audio
    drive (computed for the whole clip: a few floats per frame). A path is decoded once here
    and the clip handed to both."""
    def wrapped(audio, n_frames: int):
        from flashtalker_jax.audio.clip import open_clip

        clip = open_clip(audio)
        drive = audio_drive(clip, fps, n_frames)
        start = 0
        for chunk in motion_fn(clip, n_frames):
            count = next(iter(chunk.values())).shape[0]
            yield {**chunk, "audio": drive[start:start + count]}
            start += count
    return wrapped
