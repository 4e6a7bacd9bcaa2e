"""Frames of one identity as an avatar sees them, held in memory: read by adaptation
(adapt.py), held-out evaluation (evaluate.py, eval/drive.py) and the render benchmark.

`load_frames(seq, indices, resolution, ...)` reads the chosen frames of a VHAP folder,
box-downsamples them to resolution x resolution (intrinsics scaled to match), and returns
numpy arrays with a leading frame axis:
  image (N, h, w, 3) uint8, mask (N, h, w) uint8, viewmat (N, 4, 4) world-to-camera
  OpenCV, K (N, 3, 3) pixels, camera (N,) int32, slot (N,) int32 (row in adaptation's
  refinement table), flame_<key> (N, k) tracked params (FRAME_KEYS), and audio (N, A)
  when audio features are on.
`composite_target` puts a frame on the avatar's background with its mask; `over_frame`
puts a render over the frame itself (real footage, `task.render_over_frame`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from flashtalker_jax.data.vhap import VhapSequence
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.flame.model import FRAME_KEYS
from flashtalker_jax.render.camera import scale_intrinsics


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """A (h, w[, c]) uint8 image or mask box-downsampled to (size, size[, c]): every frame
    reader uses this one filter, so the same frame reads bit-equal everywhere."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BOX))


def audio_frame_features(seq: VhapSequence) -> np.ndarray:
    """(n_timesteps, 2 * (n_mels + 1)) log-mel rows of each video frame, concatenated."""
    from flashtalker_jax.audio.features import log_mel_features

    if seq.audio is None:
        raise InputFileError(seq.root, "avatar.use_audio is on but the folder has no audio.wav",
                             "turn it off with --config.avatar.use_audio=False")
    rows = log_mel_features(seq.audio, seq.sample_rate, seq.fps)
    return rows.reshape(rows.shape[0] // 2, -1)


MASK_SOURCES = ("fg", "head")


def load_frames(seq: VhapSequence, indices: np.ndarray, resolution: int,
                audio: np.ndarray | None = None, mask_source: str = "fg") -> dict[str, np.ndarray]:
    """Arrays of the frames `indices` (module docstring); `slot` numbers them 0..N-1.
    `mask_source`: "fg" the foreground (person) masks, "head" the head-and-neck masks of
    `flashtalker track` (real footage: the torso is not the head model's to draw)."""
    if seq.width != seq.height:
        raise InputFileError(seq.root, f"frames are {seq.width}x{seq.height}; adaptation expects "
                                       "square frames", "crop the frames to a square first")
    images = np.stack([resize(seq.load_image(i), resolution) for i in indices])
    masks = load_masks(seq, indices, resolution, mask_source)
    K = scale_intrinsics(seq.K[indices].astype(np.float32), resolution / seq.width)
    out = {"image": images, "mask": masks, "viewmat": seq.w2c[indices].astype(np.float32),
           "K": K, "camera": seq.cameras[indices].astype(np.int32),
           "slot": np.arange(len(indices), dtype=np.int32)}
    for key in FRAME_KEYS:
        out[f"flame_{key}"] = seq.flame[key][indices].astype(np.float32)
    if audio is not None:
        steps = seq.timesteps[indices]
        if steps.max() >= len(audio):
            raise InputFileError(seq.root, f"audio covers {len(audio)} frames, timestep "
                                           f"{steps.max()} is listed")
        out["audio"] = audio[steps].astype(np.float32)
    return out


def load_masks(seq: VhapSequence, indices: np.ndarray, resolution: int, source: str = "fg") -> np.ndarray:
    """(N, h, w) uint8 masks of the frames `indices`: "fg" person, "head" head-and-neck."""
    if source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {source!r}")
    load_mask = seq.load_head_mask if source == "head" else seq.load_mask
    return np.stack([resize(load_mask(i), resolution) for i in indices])


def split_indices(seq: VhapSequence, names: tuple[str, ...]) -> np.ndarray:
    """Frame indices of the first of `names` the folder defines."""
    for name in names:
        if name in seq.splits and len(seq.splits[name]):
            return np.asarray(seq.splits[name])
    raise InputFileError(seq.root, f"no non-empty transforms_{{{','.join(names)}}}.json split",
                         "write the split files (flashtalker data synth does)")


def over_frame(rgb_on_black: jax.Array, alpha: jax.Array, batch) -> jax.Array:
    """The rendered head (B, h, w, 3), drawn on black with coverage alpha (B, h, w), over
    the batch's own frames: what a real-footage avatar is compared with (the torso and
    background are the frame's, the head the avatar's)."""
    frame = batch["image"].astype(jnp.float32) / 255.0
    return rgb_on_black + (1.0 - alpha[..., None]) * frame


def composite_target(batch, background) -> jax.Array:
    """batch image (B, h, w, 3) uint8 over `background` (3,) with its mask (B, h, w) uint8:
    float (B, h, w, 3) in [0, 1], what the avatar renders on the same background."""
    image = batch["image"].astype(jnp.float32) / 255.0
    alpha = batch["mask"].astype(jnp.float32)[..., None] / 255.0
    return image * alpha + jnp.asarray(background, jnp.float32) * (1.0 - alpha)
