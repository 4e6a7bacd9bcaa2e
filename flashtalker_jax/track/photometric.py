"""Photometric refinement of a landmark fit through this project's Gaussian rasterizer.

One flat Gaussian sits on each triangle of the head's 'face' region (centre at the
centroid, in-plane radius from the triangle's size, thin along the normal, rotation from
the triangle frame: avatar/binding.py), with one colour per triangle shared by every frame
(an albedo texture, no lighting model). Each step renders `batch` frames drawn at random
at `size` x `size` (render.rasterize: "chunked" on CPU, Pallas on GPU) and compares them
with the video frames inside the detected face oval (MediaPipe FACEMESH_FACE_OVAL, filled)
and the person mask: pixels the head should cover, whatever the render covers (a fit that
shrinks the face leaves oval pixels black and pays for it). The landmark and prior terms
of the `face` stage stay in the loss over ALL frames, so frames not drawn in a step are
still held by their landmarks and their neighbours.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from PIL import Image, ImageDraw

from flashtalker_jax.avatar.binding import triangle_frames
from flashtalker_jax.avatar.quaternion import rotmat_to_quat
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.render.rasterize import rasterize
from flashtalker_jax.track import fit
from flashtalker_jax.track.observations import FACE_OVAL
from flashtalker_jax.utils.progress import progress

NORMAL_THICKNESS = 0.05  # Gaussian extent along the triangle normal / in-plane extent


def face_oval_masks(landmarks: np.ndarray, found: np.ndarray, crop: int, size: int) -> np.ndarray:
    """(T, size, size) float32: the filled face oval of each frame (zero where no face)."""
    ring = landmarks[:, list(FACE_OVAL)] * (size / crop)
    out = np.zeros((len(ring), size, size), np.float32)
    for t, points in enumerate(ring):
        if found[t]:
            image = Image.new("L", (size, size), 0)
            ImageDraw.Draw(image).polygon([tuple(map(float, p)) for p in points], fill=255)
            out[t] = np.asarray(image, np.float32) / 255
    return out


def load_frames(paths, size: int) -> np.ndarray:
    """(T, size, size, C) uint8 images resized (bilinear) for the photometric loss."""
    def one(path):
        image = Image.open(path)
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return np.stack([one(p) for p in progress(paths, desc="photometric frames", unit="frame")])


def gaussians_on_mesh(vertices: jax.Array, faces: jax.Array, scale_factor: float):
    """(means, quats, scales) of one flat Gaussian per triangle; vertices (B, V, 3)."""
    rot, size = triangle_frames(vertices, faces)                 # (B, F, 3, 3), (B, F)
    means = vertices[:, faces].mean(-2)
    s = scale_factor * size[..., None]
    scales = s * jnp.array([1.0, NORMAL_THICKNESS, 1.0])          # frame columns: a0, normal, a2
    return means, rotmat_to_quat(rot), scales


def _params(vars_: dict, idx: jax.Array) -> FlameParams:
    b = idx.shape[0]
    return FlameParams(shape=jnp.broadcast_to(vars_["shape"], (b, vars_["shape"].shape[0])),
                       expr=vars_["expr"][idx], rotation=vars_["rotation"][idx],
                       neck_pose=jnp.zeros((b, 3)), jaw_pose=vars_["jaw_pose"][idx],
                       eyes_pose=vars_["eyes_pose"][idx], translation=vars_["translation"][idx])


def render_frames(vars_, colours, model, faces, idx, cfg, size, crop):
    """RenderOutput of frames idx at size x size: the flat face Gaussians on the posed mesh,
    seen by the clip's camera (its crop-pixel intrinsics scaled to `size`), on black."""
    verts = flame_forward(model, _params(vars_, idx)).vertices
    means, quats, scales = gaussians_on_mesh(verts, faces, cfg.photo_scale)
    K, w2c = fit.camera_matrices(vars_["log_focal"], crop, crop, cfg.camera_distance)
    K = K * jnp.array([[size / crop], [size / crop], [1.0]])
    b = idx.shape[0]
    return rasterize(means, quats, scales, jnp.full(means.shape[:2], cfg.photo_opacity),
                     jnp.broadcast_to(jax.nn.sigmoid(colours), means.shape), jnp.broadcast_to(w2c, (b, 4, 4)),
                     jnp.broadcast_to(K, (b, 3, 3)), size, size, background=jnp.zeros((b, 3)))


def photometric_loss(vars_, colours, model, faces, idx, images, regions, cfg, size, crop):
    """Mean L1 over the region pixels of frames idx; images uint8 (T, s, s, 3), regions (T, s, s)."""
    out = render_frames(vars_, colours, model, faces, idx, cfg, size, crop)
    target = images[idx].astype(jnp.float32) / 255
    region = regions[idx][..., None]
    return (jnp.abs(out.rgb - target) * region).sum() / jnp.maximum(3 * region.sum(), 1.0)


def refine(vars_: dict, model: FlameModel, face_region: np.ndarray, rig, target, weight, images, regions,
           cfg: ml_collections.ConfigDict, crop: int) -> tuple[dict, np.ndarray]:
    """`photo_steps` Adam steps on every variable + the colours; returns (vars, loss per step)."""
    faces_np = np.asarray(model.faces)
    keep = np.isin(faces_np, face_region).all(1)
    faces = jnp.asarray(faces_np[keep])
    model = model.truncated(vars_["shape"].shape[0], vars_["expr"].shape[1])
    free = ("shape", "log_focal") + fit.PER_FRAME
    params = {**{k: jnp.asarray(vars_[k]) for k in free}, "colours": jnp.zeros((int(keep.sum()), 3))}
    lrs = {**dict(cfg.learning_rates), "colours": cfg.photo_colour_lr}
    scale = {k: v * cfg.photo_lr_scale if k != "colours" else v for k, v in lrs.items()}
    opt = optax.multi_transform({k: optax.adam(scale[k]) for k in params}, {k: k for k in params})
    settings = fit._Settings(fit._frozen(cfg))
    data = {"model": model, "faces": faces, "rig": rig, "target": jnp.asarray(target, jnp.float32),
            "weight": jnp.asarray(weight, jnp.float32), "images": jnp.asarray(images),
            "regions": jnp.asarray(regions)}
    step = _make_step(opt, settings, cfg, crop, n_frames=int(target.shape[0]))
    state = opt.init(params)
    key = jax.random.key(cfg.photo_seed)
    losses = []
    with progress(total=cfg.photo_steps, desc="fit photometric", unit="step") as bar:
        for _ in range(cfg.photo_steps):
            key, sub = jax.random.split(key)
            params, state, loss = step(params, state, sub, data)
            losses.append(float(loss))
            if not np.isfinite(losses[-1]):
                raise FloatingPointError(f"track stage photometric: loss became NaN/inf at step {len(losses)}")
            bar.update(1)
    out = {k: np.asarray(v) for k, v in params.items() if k != "colours"}
    return out, np.asarray(losses)


def _make_step(opt, settings, cfg, crop: int, n_frames: int):
    """The jitted step; the clip's arrays (model, images, ...) are arguments, not constants."""
    size, batch = int(cfg.photo_size), min(int(cfg.photo_batch), n_frames)

    def total(params, idx, data):
        vars_ = {k: v for k, v in params.items() if k != "colours"}
        terms = fit.loss_terms(vars_, data["rig"], data["target"], data["weight"], settings, crop, crop)
        photo = photometric_loss(vars_, params["colours"], data["model"], data["faces"], idx, data["images"],
                                 data["regions"], cfg, size, crop)
        return sum(terms.values()) + cfg.w_photo * photo

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, key, data):
        idx = jax.random.choice(key, n_frames, (batch,), replace=False)
        loss, grads = jax.value_and_grad(total)(params, idx, data)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step
