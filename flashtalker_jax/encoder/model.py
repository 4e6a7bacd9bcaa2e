"""MotionEncoder: GenFaceTalk's E_img with its sub-encoders (section 3.1), in Flax NNX.

  x_D = E_img(D)                    a small strided ConvNet over the driving crop, its last
                                    map flattened (a global pool would throw away WHERE the
                                    head is, which the transform head must read)
  E_exp, E_pose, E_eye, E_Trans     MLPs on x_D: expression (E), neck + jaw (6), eyes (6),
                                    camera code (6, encoder/camera_code.py)
  E_shape                           an MLP on the SOURCE crop's feature: shape (S)
  temporal (optional)               a residual 1-D convolution over the per-frame codes of
                                    a clip (zero-initialised: it starts as the identity),
                                    the variant that should lower jitter

Heads predict normalised values; `CodeStats` (mean, std of every target over the training
frames, fixed at construction and saved with the weights) maps them back, so one loss weight
fits expression units, radians and log-scales alike.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from flashtalker_jax.encoder.camera_code import CODE_SIZE

# Motion code layout: the per-frame targets, in this order, and their widths (E = n_expr).
MOTION_KEYS = ("expr", "neck_jaw", "eyes_pose", "camera")


class CodeStats(nnx.Variable):
    """Training-set mean / std of the targets (not trained; saved with the weights)."""


def motion_widths(n_expr: int) -> dict[str, int]:
    return {"expr": n_expr, "neck_jaw": 6, "eyes_pose": 6, "camera": CODE_SIZE}


class Mlp(nnx.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(d_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, d_out, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.silu(self.hidden(x)))


def motion_heads(keys: tuple[str, ...], feature: int, hidden: int, n_expr: int, rngs: nnx.Rngs) -> nnx.Dict:
    """GenFaceTalk's sub-encoders E_m on x_D (Eq. 2), one Mlp per motion key (motion_widths
    order of `keys`). Built in one place for both branches: the image encoder takes every
    MOTION_KEYS head, the audio branch (motion/genfacetalk_audio.py) the ones it predicts, so
    the two share weights by path (heads/<key>/...)."""
    widths = motion_widths(n_expr)
    return nnx.Dict({key: Mlp(feature, hidden, widths[key], rngs) for key in keys})


def head_codes(heads: nnx.Dict, keys: tuple[str, ...], feature: Float[Array, "... F"]) -> Float[Array, "... C"]:
    """The heads' normalised codes of x_D, concatenated in `keys` order."""
    return jnp.concatenate([heads[k](feature) for k in keys], -1)


class Backbone(nnx.Module):
    """(N, R, R, 3) in [0, 1] -> (N, feature) through len(widths) stride-2 3x3 convs."""

    def __init__(self, resolution: int, widths: tuple[int, ...], feature: int, rngs: nnx.Rngs):
        down = 2 ** len(widths)
        if resolution % down:
            raise ValueError(f"resolution {resolution} must be divisible by 2^{len(widths)} = {down}")
        chans = (3,) + tuple(widths)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), strides=2, padding="SAME", rngs=rngs)
                               for a, b in zip(chans[:-1], chans[1:])])
        side = resolution // down
        self.project = nnx.Linear(side * side * widths[-1], feature, rngs=rngs)

    def __call__(self, images):
        return self.features(images)[1]

    def features(self, images) -> tuple[list[jax.Array], jax.Array]:
        """(every conv's map, finest first: (N, R / 2^k, R / 2^k, widths[k-1]) for k = 1..;
        the feature vector (N, feature)): the hierarchical features the e2v identity encoder
        (e2v/identity_encoder.py) reads, the vector alone being x_D."""
        x, maps = images * 2.0 - 1.0, []
        for conv in self.convs:
            x = jax.nn.silu(conv(x))
            maps.append(x)
        return maps, jax.nn.silu(self.project(x.reshape(x.shape[0], -1)))


class Temporal(nnx.Module):
    """Residual 1-D convolution over time of the normalised motion codes (B, T, C)."""

    def __init__(self, channels: int, kernel: int, hidden: int, rngs: nnx.Rngs):
        self.inner = nnx.Conv(channels, hidden, (kernel,), padding="SAME", rngs=rngs)
        self.out = nnx.Conv(hidden, channels, (1,), kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, codes):
        return codes + self.out(jax.nn.silu(self.inner(codes)))


class MotionEncoder(nnx.Module):
    def __init__(self, *, n_expr: int, n_shape: int, resolution: int, widths: tuple[int, ...],
                 feature: int, hidden: int, temporal_kernel: int, stats: dict[str, np.ndarray],
                 rngs: nnx.Rngs):
        """stats: {"motion_mean", "motion_std": (C,), "shape_mean", "shape_std": (S,)} with
        C = sum(motion_widths(n_expr)); temporal_kernel 0 = per-frame only."""
        self.n_expr, self.n_shape, self.resolution = n_expr, n_shape, resolution
        widths_of = motion_widths(n_expr)
        self.widths = tuple(widths_of[k] for k in MOTION_KEYS)   # static (hashable graph data)
        channels = sum(self.widths)
        for key, size in (("motion_mean", channels), ("motion_std", channels),
                          ("shape_mean", n_shape), ("shape_std", n_shape)):
            if np.shape(stats[key]) != (size,):
                raise ValueError(f"stats[{key!r}] has shape {np.shape(stats[key])}, expected ({size},)")
            setattr(self, key, CodeStats(jnp.asarray(stats[key], jnp.float32)))
        self.backbone = Backbone(resolution, tuple(widths), feature, rngs)
        self.heads = motion_heads(MOTION_KEYS, feature, hidden, n_expr, rngs)
        self.shape_head = Mlp(feature, hidden, n_shape, rngs)
        self.temporal = Temporal(channels, temporal_kernel, hidden, rngs) if temporal_kernel else None

    def frame_codes(self, images: Float[Array, "N R R 3"]) -> Float[Array, "N C"]:
        """Normalised per-frame motion codes (no temporal head)."""
        return head_codes(self.heads, MOTION_KEYS, self.backbone(images))

    def smooth(self, codes: Float[Array, "B T C"]) -> Float[Array, "B T C"]:
        """The temporal head over each clip's per-frame codes (identity without one)."""
        return codes if self.temporal is None else self.temporal(codes)

    def motion(self, frames: Float[Array, "B T R R 3"]) -> Float[Array, "B T C"]:
        """Normalised motion codes of clips (the temporal head, when present, runs over T)."""
        b, t = frames.shape[:2]
        return self.smooth(self.frame_codes(frames.reshape((b * t,) + frames.shape[2:])).reshape(b, t, -1))

    def shape(self, source: Float[Array, "B R R 3"]) -> Float[Array, "B S"]:
        """Normalised shape code of each clip's source crop."""
        return self.shape_head(self.backbone(source))

    def __call__(self, frames, source):
        return self.motion(frames), self.shape(source)

    def denormalise(self, motion: Float[Array, "... C"], shape: Float[Array, "... S"]) -> tuple[dict, jax.Array]:
        """({expr, neck_pose, jaw_pose, eyes_pose, camera}, shape) in target units."""
        motion = motion * self.motion_std[...] + self.motion_mean[...]
        parts, start = {}, 0
        for key, width in zip(MOTION_KEYS, self.widths):
            parts[key] = motion[..., start:start + width]
            start += width
        neck_jaw = parts.pop("neck_jaw")
        parts.update(neck_pose=neck_jaw[..., :3], jaw_pose=neck_jaw[..., 3:])
        return parts, shape * self.shape_std[...] + self.shape_mean[...]
