"""The rendered head joined to the person's own frame: what `speak` and `eval` do with an
avatar trained on real footage (configs/adapt_real.py: the head drawn on black with its
coverage alpha).

`Compositor`: head rgb (on black) + alpha, the frame the head goes into and that frame's
own head as the avatar draws it (alpha > 0.5 of the render at the frame's tracked
parameters: `own_heads`) -> the frame with its head region replaced. The removed region is
R = dilate((alpha > 0.5) | own head, radius): the new head AND the frame's recorded head (a
closed mouth must not leave the recorded open jaw showing below it), widened by the seam
the inpainter learned to fill. Hair and neck the avatar does not draw stay the frame's:
the head pose is the frame's own, so they fit. Two methods, named in every report:
  "body inpainter"   GGTalker's U-Net (composite/inpainter.py) paints R from the render
                     and the frame outside R; outside R the output is the frame exactly.
  "alpha over frame" no inpainter trained: the head over the frame by its alpha
                     (TalkingGaussian's composite); where the new head does not cover the
                     recorded one, the recorded one shows.

`FullFrame`: the speak render function for an avatar folder with a body loop
(composite/body.py): output frame t shows body-loop frame pingpong(t) with the head
rendered at that frame's tracked pose (the motion stage replays the same schedule), and,
for sources larger than the crop, the crop pasted back into the source frame
(composite/paste.py) only where R (feathered) lies.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

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
    output frame, by the ping-pong schedule the pose replay uses (composite/schedule.py)."""
    from flashtalker_jax.composite.schedule import pingpong_indices

    def wrapped(audio, n_frames: int):
        start = 0
        for chunk in motion_fn(audio, n_frames):
            count = next(iter(chunk.values())).shape[0]
            yield {**chunk, "loop_index": pingpong_indices(start, count, n_loop)}
            start += count
    return wrapped
