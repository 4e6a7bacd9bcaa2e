"""The motion encoder as the tracker's initialiser (`flashtalker track --init encoder RUN`).

The tracker's default start is a frontal, neutral head placed by the landmarks' spread
(track/fit.init_vars), which its rigid stage then turns and its face stage shapes. The
encoder reads every crop once and gives a start that is already turned, shaped and
expressed: shape (mean of a few frames), and per frame expression, jaw, eyes and the pose
seen through the tracker's own camera (track/fit.camera_matrices at the initial focal).
The tracker keeps the neck at zero, so the encoder's neck rotation is folded into the
global one: R = R_g R_n, and the translation moves by R_g (I - R_n)(J_neck - J_root) so
every point that follows the neck joint stays where it was (exact for a rigid head; only
the skinning blend at the neck base and the pose correctives differ).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.encoder.camera_code import rest_joints, rotmat_to_axis_angle
from flashtalker_jax.flame.lbs import batch_rodrigues


def encoder_init_vars(encoder_dir, images: list[Path], flame_file: Path, model, cfg, crop: int) -> tuple[dict, str]:
    """(tracker vars as track/fit.init_vars returns them, the encoder weights' sha256) for
    the clip's crops; `model` the tracker's FlameModel, cfg the track config."""
    from PIL import Image

    from flashtalker_jax.encoder.folder import read_encoder
    from flashtalker_jax.encoder.predict import encode_clip, resize_crops
    from flashtalker_jax.utils.files import sha256_file

    folder = read_encoder(encoder_dir, flame_file)
    crops = resize_crops([np.asarray(Image.open(p).convert("RGB")) for p in images], folder.encoder.resolution)
    motion, shape = encode_clip(folder.encoder, crops)
    return tracker_vars(model, motion, shape, cfg, crop), sha256_file(folder.path / "encoder.npz")


def tracker_vars(model, motion: dict[str, np.ndarray], shape: np.ndarray, cfg, crop: int) -> dict:
    """Tracker vars of per-frame motion {expr, neck_pose, jaw_pose, eyes_pose, camera code}
    and a shape, seen through the tracker's camera at its initial focal (module docstring)."""
    from flashtalker_jax.encoder.predict import to_flame_params
    from flashtalker_jax.track.fit import camera_matrices

    n_shape, n_expr = int(cfg.flame.n_shape), int(cfg.flame.n_expr)
    flame = model.truncated(n_shape, n_expr)
    log_focal = np.float32(np.log(cfg.fit.focal_init_over_width))
    K, w2c = camera_matrices(jnp.asarray(log_focal), crop, crop, cfg.fit.camera_distance)
    shape = np.pad(np.asarray(shape)[:n_shape], (0, max(0, n_shape - len(shape))))
    params = to_flame_params(flame, motion, shape, np.asarray(w2c), np.asarray(K), crop)
    r_global, r_neck = batch_rodrigues(params.rotation), batch_rodrigues(params.neck_pose)
    joints = rest_joints(flame, params)
    lever = joints[:, 1] - joints[:, 0]
    shift = jnp.einsum("bij,bj->bi", r_global, lever - jnp.einsum("bij,bj->bi", r_neck, lever))
    return {"shape": shape.astype(np.float32), "log_focal": log_focal,
            "rotation": np.asarray(jax.jit(rotmat_to_axis_angle)(r_global @ r_neck), np.float32),
            "translation": np.asarray(params.translation + shift, np.float32),
            "jaw_pose": np.asarray(params.jaw_pose, np.float32), "eyes_pose": np.asarray(params.eyes_pose, np.float32),
            "expr": np.asarray(params.expr, np.float32)}
