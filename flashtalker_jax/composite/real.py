"""The rendered head joined to the person's own frame: what `speak` and `eval` do with an
avatar trained on real footage (configs/adapt_real.py: the head drawn on black with its
coverage alpha).

`Compositor`: head rgb (on black) + alpha, the frame the head goes into and that frame's
own head as the avatar draws it (alpha > 0.5 of the render at the frame's tracked
parameters: `own_heads`) -> the frame with its head region replaced. The removed region is
R = dilate((alpha > 0.5) | own head, radius): the new head AND the frame's recorded head (a
closed mouth must not leave the recorded open jaw showing below it), widened by the seam
the inpainter learned to fill. Hair and neck the avatar does not draw stay the frame's:
the head pose is the frame's own (a generated one: close to it, `LoopFollower`), so they
fit. Two methods, named in every report:
  "body inpainter"   GGTalker's U-Net (composite/inpainter.py) paints R from the render
                     and the frame outside R; outside R the output is the frame exactly.
  "alpha over frame" no inpainter trained: the head over the frame by its alpha
                     (TalkingGaussian's composite); where the new head does not cover the
                     recorded one, the recorded one shows.

`FullFrame`: the speak render function for an avatar folder with a body loop
(composite/body.py): output frame t shows body-loop frame loop_index(t), and, for sources
larger than the crop, the crop pasted back into the source frame (composite/paste.py) only
where R (feathered) lies. loop_index comes with the motion chunks:
  replayed pose   `with_loop_index`: pingpong(t), the head rendered at that frame's tracked
                  pose (the motion stage replays the same schedule)
  generated pose  `LoopFollower`: the frames whose recorded pose follows the pose generated
                  from the audio (composite/schedule.follow_indices), the head rendered
                  with the generated rotation on the chosen frame's translation
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.composite.schedule import follow_indices
from flashtalker_jax.errors import ConfigError

INPAINTER_DIR = "inpainter"   # in the avatar folder (written by `flashtalker adapt-body`)
BODY_DIR = "body"             # the body loop (composite/body.py)
INPAINTER = "body inpainter"
ALPHA_OVER = "alpha over frame"


def is_real_avatar(task_cfg) -> bool:
    """Trained over real frames (adapt_real.py): its render is the head alone."""
    return bool(task_cfg.get("render_over_frame", False))


@dataclasses.dataclass(frozen=True)
class Compositor:
    """method: INPAINTER or ALPHA_OVER; radius: dilation of the removed region (px at the
    crop size); feather_px: soft edge of the paste-back mask."""
    method: str
    radius: int
    feather_px: float
    _fn: Callable

    def __call__(self, head_rgb: np.ndarray, head_alpha: np.ndarray, frames: np.ndarray,
                 own_heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """head_rgb (B, S, S, 3) float on black, head_alpha (B, S, S), frames (B, S, S, 3)
        float in [0, 1], own_heads (B, S, S) bool -> (composited (B, S, S, 3) float,
        removed region (B, S, S) float)."""
        out, region = self._fn(jnp.asarray(head_rgb, jnp.float32), jnp.asarray(head_alpha, jnp.float32),
                               jnp.asarray(frames, jnp.float32), jnp.asarray(own_heads, jnp.float32))
        return np.asarray(out), np.asarray(region)


def load_compositor(avatar_dir: str | Path, radius: int | None = None, require_inpainter: bool = False,
                    feather_px: float = 2.0) -> Compositor:
    """The compositor of an avatar folder: its body inpainter when AVATAR/inpainter exists
    (radius: the inpainter config's inference_dilation unless given), else the alpha
    composite (ConfigError when `require_inpainter`)."""
    from flashtalker_jax.composite.inpainter import composite, load_inpainter, remove_region

    folder = Path(avatar_dir) / INPAINTER_DIR
    if not folder.exists():
        if require_inpainter:
            raise ConfigError(f"{avatar_dir} has no body inpainter ({folder} is missing): train it with "
                              f"`flashtalker adapt-body --avatar {avatar_dir} --data TRACKED_FOLDER`, or "
                              "pass --head-only for the head on a flat background")
        return Compositor(ALPHA_OVER, int(radius or 0), feather_px, jax.jit(_alpha_over))
    net, cfg = load_inpainter(folder)
    radius = int(radius if radius is not None else cfg.inference_dilation)
    from flax import nnx

    graphdef, state = nnx.split(net)

    @jax.jit
    def fn(state, head_rgb, head_alpha, frames, own_heads):
        remove = remove_region(head_alpha, own_heads, radius)
        return composite(nnx.merge(graphdef, state), head_rgb, head_alpha, frames, remove), remove

    return Compositor(INPAINTER, radius, feather_px, lambda *arrays: fn(state, *arrays))


def composite_frames(compositor: Compositor, head_rgb: np.ndarray, head_alpha: np.ndarray, frames: np.ndarray,
                     own_heads: np.ndarray, batch: int = 8) -> np.ndarray:
    """`compositor` over (T, S, S, ...) arrays, `batch` frames per call (a whole held-out
    split at 512 px would not fit in memory at once) -> (T, S, S, 3) float in [0, 1]."""
    parts = [compositor(head_rgb[i:i + batch], head_alpha[i:i + batch], frames[i:i + batch],
                        own_heads[i:i + batch])[0] for i in range(0, len(frames), batch)]
    return np.clip(np.concatenate(parts), 0.0, 1.0)


def _alpha_over(head_rgb, head_alpha, frames, own_heads):
    del own_heads
    out = head_rgb + (1.0 - head_alpha[..., None]) * frames
    return out, (head_alpha > 0.5).astype(jnp.float32)


# ------------------------------------------------------------------ speak: the full frame

def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class FullFrame:
    """speak's render function for a real avatar: batch rows carry `loop_index` (the body
    loop frame each output frame shows) beside the FLAME rows."""
    render_head: Callable          # pipeline/avatar.LoadedAvatar.render_head
    compositor: Compositor
    body: object                   # composite/body.BodyLoop

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the output frames."""
        if self.body.sources is None:
            side = self.body.crops.shape[1]
            return side, side
        return self.body.sources.shape[2], self.body.sources.shape[1]

    def __call__(self, batch) -> tuple[np.ndarray, np.ndarray]:
        from flashtalker_jax.composite.paste import feather, paste_back

        rgb, alpha, mouth = self.render_head(batch)
        rows = np.asarray(batch["loop_index"]).astype(np.int64)
        frames = self.body.crops[rows].astype(np.float32) / 255.0
        # The body loop's head masks are its frames' own heads as the avatar draws them (adapt-body).
        out, region = self.compositor(rgb, alpha, frames, self.body.head_masks[rows])
        crops = to_uint8(out)
        if self.body.sources is None:
            return crops, np.asarray(mouth)
        pasted = [paste_back(self.body.sources[r], crop, feather(mask, self.compositor.feather_px), self.body.box)
                  for r, crop, mask in zip(rows, crops, region)]
        return np.stack(pasted), np.asarray(mouth)


def with_loop_index(motion_fn: Callable, n_loop: int) -> Callable:
    """Wrap a MotionFn so each chunk also carries `loop_index`: the body-loop frame of each
    output frame, by the ping-pong schedule the pose replay uses (composite/schedule.py).
    For a generated head pose the loop follows the pose instead (`LoopFollower`)."""
    from flashtalker_jax.composite.schedule import pingpong_indices

    def wrapped(audio, n_frames: int):
        start = 0
        for chunk in motion_fn(audio, n_frames):
            count = next(iter(chunk.values())).shape[0]
            yield {**chunk, "loop_index": pingpong_indices(start, count, n_loop)}
            start += count
    return wrapped


# ------------------------------------------------- speak --pose generated: the loop follows

FOLLOW_KEYS = ("translation", "rotation", "neck_pose")
# Costs of follow_indices in px^2 at the crop (the unit of the pose distance, `pose_pixels`).
# A held frame freezes torso and background; a change of step (a reversal, or a hold
# starting or ending) is a visible event. Measured on the news loop with 60 s of speech
# (BENCHMARKS.md): how closely the loop follows barely depends on these (mean head-vs-torso
# rotation 2.03-2.21 deg from hold 1 to 400), how the body moves does: hold 1 / turn 36 holds
# 85 % of frames; 100 / 400 plays 75 % of them with 1.4 changes a second, close to the
# replay's always-moving body. A hold then costs as much as one frame 10 px off, a turn 20 px.
HOLD_COST_PX2 = 100.0
TURN_COST_PX2 = 400.0


def pose_pixels(flame, viewmat: np.ndarray, K: np.ndarray, translation: np.ndarray) -> dict[str, float]:
    """Pixels at the crop that one unit of each pose key moves the head by, so translation
    and rotations add up in one distance: translation (per metre) = focal / depth of the
    root joint; rotation (per radian) = that times the median distance of the head's
    vertices from the root joint (FLAME's global rotation turns about it, at the base of
    the neck: ~0.19 m); neck_pose the same from the neck joint. `flame`: the avatar's
    FlameModel (its shape baked into v_template); `translation` (N, 3) recorded, for the
    depth; viewmat (4, 4) world-to-camera OpenCV, K (3, 3) at the crop size."""
    vertices = np.asarray(flame.v_template, np.float64)
    joints = np.asarray(flame.J_regressor, np.float64) @ vertices
    root = joints[0] + np.asarray(translation, np.float64).mean(0)
    depth = float((np.asarray(viewmat, np.float64) @ np.append(root, 1.0))[2])
    if depth <= 0:
        raise ValueError(f"the head's root joint is behind the camera (depth {depth})")
    per_metre = float(K[0, 0]) / depth
    lever = {k: float(np.median(np.linalg.norm(vertices - joints[j], axis=1))) for k, j in
             (("rotation", 0), ("neck_pose", 1))}
    return {"translation": per_metre, "rotation": per_metre * lever["rotation"],
            "neck_pose": per_metre * lever["neck_pose"]}


@dataclasses.dataclass(frozen=True)
class LoopFollower:
    """The body loop under a generated head pose: the generated pose of the whole clip ->
    the loop frame of each output frame (`loop_index`: composite/schedule.follow_indices
    with the pose in pixels, `pose_pixels`) and the pose the head is rendered with.

    The head keeps the generated rotations (rotation, neck_pose) and takes the chosen loop
    frame's translation. The translation of FLAME's root joint, at the base of the neck, is
    where the body is: the recorded neck below the pasted head (outside the replaced
    region) is there, so a generated translation off it detaches the head from its neck
    (news loop, 60 s: 8.9 px mean, 18 px at the 95th percentile of 512); it steers which
    frame plays instead. The generated rotation turns the head about the neck's base (mean
    2.0 deg from the torso frame's own, 3.8 at the 95th percentile): the face moves, the
    junction with the neck barely does, and the frame's own head is replaced anyway.

    recorded: {key: (N, 3)} the loop frames' tracked pose in loop order
    (body.pose_track_for_loop); scale: pose_pixels."""
    recorded: dict
    scale: dict

    def features(self, poses: dict, keys: tuple[str, ...]) -> np.ndarray:
        """{key: (T, 3)} -> (T, 3 * len(keys)) in pixels at the crop."""
        return np.concatenate([np.asarray(poses[k], np.float64) * self.scale[k] for k in keys], 1)

    def __call__(self, poses: dict) -> dict:
        """{key: (T, 3)} generated (rotation, translation[, neck_pose]) -> the same keys as
        rendered + loop_index (T,) int64."""
        keys = tuple(k for k in FOLLOW_KEYS if k in poses)
        if "translation" not in keys:
            raise ValueError(f"the generated pose has {sorted(poses)}: following the body loop needs translation")
        n_loop = len(self.recorded["translation"])
        chex.assert_shape([self.recorded[k] for k in keys], (n_loop, 3))
        chex.assert_shape([poses[k] for k in keys], (len(poses["translation"]), 3))
        index = follow_indices(self.features(poses, keys), self.features(self.recorded, keys),
                               hold_cost=HOLD_COST_PX2, turn_cost=TURN_COST_PX2)
        translation = np.asarray(self.recorded["translation"], np.float32)[index]
        return {**poses, "translation": translation, "loop_index": index}
