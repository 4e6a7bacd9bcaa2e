"""The photometric term: zero for the frames the head itself rendered (render_frames, the
loss's own renderer), larger when the head moves, and its gradient pulls a shifted head
back (the rasterizer and FLAME have their own parity tests; this checks how the stage
wires them)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.config import load_config
from flashtalker_jax.track import photometric

SIZE, CROP = 48, 512


def _scene(head):
    data, model = head
    cfg = load_config("track").fit
    T = 2
    vars_ = {"shape": jnp.zeros(10), "log_focal": jnp.asarray(np.log(2.4), jnp.float32),
             "rotation": jnp.zeros((T, 3)), "translation": jnp.tile(jnp.array([[0.0, 0.0, 0.1]]), (T, 1)),
             "jaw_pose": jnp.zeros((T, 3)), "eyes_pose": jnp.zeros((T, 6)), "expr": jnp.zeros((T, 10))}
    faces_np = np.asarray(model.faces)
    faces = jnp.asarray(faces_np[np.isin(faces_np, data["masks"]["face"]).all(1)])
    colours = jax.random.normal(jax.random.key(0), (faces.shape[0], 3))
    return cfg, model.truncated(10, 10), faces, vars_, colours


def test_photometric_loss_zero_at_truth_and_pulls_back(head):
    cfg, model, faces, vars_, colours = _scene(head)
    idx = jnp.arange(2)
    rgb, alpha = photometric.render_frames(vars_, colours, model, faces, idx, cfg, SIZE, CROP)[:2]
    images = jnp.round(jnp.clip(rgb, 0, 1) * 255).astype(jnp.uint8)
    regions = (alpha > 0.5).astype(jnp.float32)
    assert float(regions.mean()) > 0.05

    def loss(v):
        return photometric.photometric_loss(v, colours, model, faces, idx, images, regions, cfg, SIZE, CROP)

    at_truth = float(loss(vars_))
    assert at_truth < 2.5e-3                      # uint8 rounding of the target: <= 1/510 per channel
    shifted = {**vars_, "translation": vars_["translation"] + jnp.array([0.004, 0.0, 0.0])}
    assert float(loss(shifted)) > 5 * at_truth
    grad = jax.grad(loss)(shifted)["translation"]
    assert float(grad[:, 0].sum()) > 0             # descent moves x back towards the truth


def test_face_oval_masks():
    lm = np.zeros((2, 478, 2))
    theta = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    from flashtalker_jax.track.observations import FACE_OVAL
    lm[:, list(FACE_OVAL)] = np.stack([256 + 100 * np.cos(theta), 256 + 100 * np.sin(theta)], 1)
    masks = photometric.face_oval_masks(lm, np.array([True, False]), CROP, 64)
    area = masks[0].sum() / 64 ** 2
    assert abs(area - np.pi * (100 / 512) ** 2) < 0.01 and masks[1].sum() == 0
