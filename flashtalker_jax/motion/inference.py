"""Audio features -> FLAME motion with a saved motion model (either kind), any length.

The diffusion prior samples DiffPoseTalk windows (windows.py) with DDIM and classifier-free
guidance from a seed; Audio2Param runs one causal pass (lengths are padded up to a multiple
of `pad_to` frames so a handful of compiled shapes serve every clip). Head pose is not
predicted: `to_flame_params` takes the pose track of the identity's video.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.a2e_prior import make_window_sampler
from flashtalker_jax.motion.layers import jit_apply
from flashtalker_jax.motion.tasks import LoadedMotionModel
from flashtalker_jax.motion.windows import sample_long


class Predictor:
    def __init__(self, loaded: LoadedMotionModel, sample_steps: int | None = None,
                 guidance: float | None = None, pad_to: int = 50):
        self.loaded = loaded
        task = loaded.task
        self.steps_per_frame = task.model.steps_per_frame
        self.pad_to = pad_to
        if loaded.kind == "a2e_prior":
            alpha_bars = jnp.asarray(diffusion.cosine_alpha_bars(task.model.diffusion_steps), jnp.float32)
            self._sampler = make_window_sampler(loaded.model, alpha_bars, sample_steps or task.sample.steps,
                                                task.sample.guidance if guidance is None else guidance)
        else:
            self._apply = jit_apply(loaded.model)

    def __call__(self, audio: np.ndarray, identity_row: int, seed: int = 0,
                 template: np.ndarray | None = None) -> np.ndarray:
        """audio: raw features (steps_per_frame * T, D) -> raw motion (T, P) [expr | jaw]."""
        loaded, s = self.loaded, self.steps_per_frame
        n = audio.shape[0] // s
        feats = loaded.audio_norm.normalise(audio[:s * n]).astype(np.float32)
        task = loaded.task
        if loaded.kind == "a2e_prior":
            row = np.array([identity_row], np.int32)
            fn = lambda key, *args: self._sampler(key, *args, row)
            motion = sample_long(fn, feats, n, task.n_expr + 3, task.model.window, task.model.context, s,
                                 jax.random.key(seed))
        else:
            padded = -(-n // self.pad_to) * self.pad_to
            rows = np.zeros((1, s * padded, feats.shape[1]), np.float32)
            rows[0, :s * n] = feats
            mask = (np.arange(padded) < n)[None]
            motion = np.asarray(self._apply(rows, template[None].astype(np.float32), mask))[0, :n]
        return loaded.motion_norm.denormalise(motion).astype(np.float32)


def to_flame_params(motion: np.ndarray, pose_track: dict[str, np.ndarray], shape: np.ndarray) -> dict:
    """FLAME parameters per frame: predicted expr/jaw + the video's head pose, played forward
    and backward when the audio is longer (no jump at the turn).

    motion (T, E + 3); pose_track: rotation, neck_pose, eyes_pose, translation (N, k)."""
    t = motion.shape[0]
    n = next(iter(pose_track.values())).shape[0]
    phase = np.arange(t) % max(2 * n - 2, 1)
    idx = np.where(phase < n, phase, 2 * n - 2 - phase)
    out = {k: np.asarray(v)[idx] for k, v in pose_track.items()
           if k in ("rotation", "neck_pose", "eyes_pose", "translation")}
    out.update(expr=motion[:, :-3], jaw_pose=motion[:, -3:], shape=np.broadcast_to(shape, (t, shape.shape[0])))
    return out
