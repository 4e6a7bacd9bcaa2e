"""Audio features -> FLAME motion with a saved motion model (any kind), any length,
streamed window by window (windows.py).

The diffusion prior samples DiffPoseTalk windows with DDIM and classifier-free guidance
from a seed. Audio2Param, Talk2Me's Expression Generator and GenFaceTalk's audio branch
(all causal, trained on crops of `task.model.window` frames) run on windows of that crop
length: `context` frames of warm-up history (one PPE period, so positional codes match the full sequence) + `hop`
new frames, neighbouring windows cross-faded over the context frames. Every window is then a sequence length the model was
trained on, and time and memory grow linearly with the clip instead of quadratically.
Head pose is not predicted: `to_flame_params` takes the pose track of the identity's video.
"""
from __future__ import annotations

from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.composite.schedule import pingpong_indices
from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.a2e_prior import make_window_sampler
from flashtalker_jax.motion.layers import jit_apply
from flashtalker_jax.motion.tasks import LoadedMotionModel
from flashtalker_jax.audio.windowed import AudioRows, rows_of
from flashtalker_jax.motion.windows import causal_windows, sample_windows


def causal_window_sizes(crop: int, period: int) -> tuple[int, int, int]:
    """(hop, context, overlap) for a causal model trained on `crop`-frame crops: context one
    PPE period when the crop holds two, hop the rest rounded down to whole periods (so every
    window starts on a period boundary), cross-fade over the whole context: the later
    window's estimate of warm-up frame i has seen i + 1 frames of history and gets weight
    (i + 1) / (context + 1), growing with what it has seen."""
    context = period if crop >= 2 * period else 0
    hop = max(1, (crop - context) // period) * period
    return hop, context, min(context, hop)


class Predictor:
    def __init__(self, loaded: LoadedMotionModel, sample_steps: int | None = None,
                 guidance: float | None = None):
        self.loaded = loaded
        task = loaded.task
        self.steps_per_frame = task.model.steps_per_frame
        if loaded.kind == "a2e_prior":
            alpha_bars = jnp.asarray(diffusion.cosine_alpha_bars(task.model.diffusion_steps), jnp.float32)
            self._sampler = make_window_sampler(loaded.model, alpha_bars, sample_steps or task.sample.steps,
                                                task.sample.guidance if guidance is None else guidance)
        else:
            self._apply = jit_apply(loaded.model)
            self.hop, self.context, self.overlap = causal_window_sizes(task.model.window, task.model.period)

    def refresh(self) -> None:
        """Use the parameters `nnx.update` put into the loaded model (no recompilation)."""
        (self._sampler if self.loaded.kind == "a2e_prior" else self._apply).refresh()

    def windows(self, raw_rows: AudioRows, num_frames: int, identity_row: int, seed: int = 0,
                template: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Raw motion [expr | jaw] of frames [0, num_frames), yielded window by window.

        raw_rows(first_frame, n) -> raw (un-normalised) features (steps_per_frame * n, D),
        zero rows for frames outside the clip; only one window's rows are asked for at a time."""
        loaded, s = self.loaded, self.steps_per_frame

        def rows(start: int, n: int) -> np.ndarray:
            frame = np.repeat(np.arange(start, start + n), s)
            inside = ((frame >= 0) & (frame < num_frames))[:, None]
            return np.where(inside, loaded.audio_norm.normalise(raw_rows(start, n)), 0).astype(np.float32)

        task = loaded.task
        if loaded.kind == "a2e_prior":
            row = np.array([identity_row], np.int32)
            fn = lambda key, *args: self._sampler(key, *args, row)
            chunks = sample_windows(fn, rows, num_frames, task.n_expr + 3, task.model.window,
                                    task.model.context, jax.random.key(seed))
        elif loaded.kind == "genfacetalk_audio":   # no style input: audio alone
            chunks = causal_windows(self._apply, rows, num_frames, self.hop, self.context, self.overlap)
        else:
            # speak passes no template for a kind it does not know (the Expression
            # Generator): the run's own style input of this row (templates.npy).
            style = (loaded.templates[identity_row] if template is None else template)[None].astype(np.float32)
            chunks = causal_windows(lambda audio, mask: self._apply(audio, style, mask), rows, num_frames,
                                    self.hop, self.context, self.overlap)
        for chunk in chunks:
            yield loaded.motion_norm.denormalise(chunk).astype(np.float32)

    def __call__(self, audio: np.ndarray, identity_row: int, seed: int = 0,
                 template: np.ndarray | None = None) -> np.ndarray:
        """audio: raw features (steps_per_frame * T, D) -> raw motion (T, P) [expr | jaw]."""
        s = self.steps_per_frame
        n = audio.shape[0] // s
        rows = rows_of(audio[:s * n], s, n)
        return np.concatenate(list(self.windows(rows, n, identity_row, seed, template)))


def to_flame_params(motion: np.ndarray, pose_track: dict[str, np.ndarray], shape: np.ndarray,
                    start: int = 0) -> dict:
    """FLAME parameters of frames [start, start + T): predicted expr/jaw + the video's head
    pose, played forward and backward when the audio is longer (no jump at the turn).

    motion (T, E + 3); pose_track: rotation, neck_pose, eyes_pose, translation (N, k)."""
    t = motion.shape[0]
    n = next(iter(pose_track.values())).shape[0]
    idx = pingpong_indices(start, t, n)   # the body loop (composite/body.py) uses the same frames
    out = {k: np.asarray(v)[idx] for k, v in pose_track.items()
           if k in ("rotation", "neck_pose", "eyes_pose", "translation")}
    out.update(expr=motion[:, :-3], jaw_pose=motion[:, -3:], shape=np.broadcast_to(shape, (t, shape.shape[0])))
    return out
