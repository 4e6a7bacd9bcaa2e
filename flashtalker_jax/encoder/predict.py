"""Run a trained encoder over a clip's crops: FLAME parameters for any camera.

`encode_clip` -> per-frame motion (expr, neck_pose, jaw_pose, eyes_pose, camera code) and
the identity's shape; `to_flame_params` turns them into FlameParams seen through a camera
(the clip's own, or an avatar's for reenactment). Frames go through the backbone in
batches of `batch` (one compiled shape: the last batch is padded); the temporal head, when
the encoder has one, then runs over the whole clip at once (its codes are small).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.encoder.camera_code import from_camera_code
from flashtalker_jax.encoder.model import MotionEncoder
from flashtalker_jax.encoder.task import fit_width
from flashtalker_jax.flame.model import FlameModel, FlameParams


def resize_crops(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W, 3) uint8 square crops -> (N, R, R, 3) uint8 (box filter, as training)."""
    from flashtalker_jax.avatar.frames import resize

    return np.stack([resize(np.asarray(im), resolution) for im in images])


@functools.partial(jax.jit, static_argnums=0)
def _frame_codes(graphdef, state, images):
    return nnx.merge(graphdef, state).frame_codes(images.astype(jnp.float32) / 255.0)


@functools.partial(jax.jit, static_argnums=0)
def _shape_codes(graphdef, state, images):
    return nnx.merge(graphdef, state).shape(images.astype(jnp.float32) / 255.0)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _finish(graphdef, state, codes, shape_codes, temporal: bool):
    encoder = nnx.merge(graphdef, state)
    motion = encoder.smooth(codes[None])[0] if temporal else codes
    return encoder.denormalise(motion, jnp.mean(shape_codes, 0))


def encode_clip(encoder: MotionEncoder, images: np.ndarray, *, batch: int = 64,
                source_frames: int = 8, temporal: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(motion {expr (N, E), neck_pose, jaw_pose (N, 3), eyes_pose (N, 6), camera (N, 6)},
    shape (S,)) of a clip's crops (N, R, R, 3) uint8 at the encoder's resolution. Shape: the
    mean shape code of `source_frames` evenly spread frames (one source image is the
    paper's; a few average out a blink or a turned head). temporal=False skips the
    temporal head (the raw per-frame codes, for comparison)."""
    graphdef, state = nnx.split(encoder)
    n = len(images)
    codes = []
    for start in range(0, n, batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)]) if len(chunk) < batch else chunk
        codes.append(np.asarray(_frame_codes(graphdef, state, jnp.asarray(padded)))[:len(chunk)])
    codes = np.concatenate(codes)
    picks = np.linspace(0, n - 1, min(source_frames, n)).round().astype(int)
    shape_codes = _shape_codes(graphdef, state, jnp.asarray(images[picks]))
    motion, shape = _finish(graphdef, state, jnp.asarray(codes), shape_codes, temporal)
    return {k: np.asarray(v) for k, v in motion.items()}, np.asarray(shape)


def to_flame_params(flame: FlameModel, motion: dict[str, np.ndarray], shape: np.ndarray | None,
                    viewmat: np.ndarray, K: np.ndarray, width: int) -> FlameParams:
    """FlameParams of the frames seen through one camera (viewmat (4, 4), K (3, 3) at
    `width` pixels). shape None: a personalised model (shape baked in, as avatars have)."""
    n = motion["expr"].shape[0]
    shape_arr = jnp.zeros((n, 0)) if shape is None else jnp.broadcast_to(jnp.asarray(shape), (n, len(shape)))
    expr = jnp.asarray(fit_width(np.asarray(motion["expr"]), flame.n_expr))
    params = FlameParams(shape=shape_arr, expr=expr, rotation=jnp.zeros((n, 3)),
                         neck_pose=jnp.asarray(motion["neck_pose"]), jaw_pose=jnp.asarray(motion["jaw_pose"]),
                         eyes_pose=jnp.asarray(motion["eyes_pose"]), translation=jnp.zeros((n, 3)))
    cams = (jnp.broadcast_to(jnp.asarray(viewmat, jnp.float32), (n, 4, 4)),
            jnp.broadcast_to(jnp.asarray(K, jnp.float32), (n, 3, 3)))
    return jax.jit(from_camera_code, static_argnums=5)(flame, params, jnp.asarray(motion["camera"]), *cams, width)
