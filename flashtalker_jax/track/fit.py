"""The FLAME fit of a whole clip to 2-D landmarks: one jitted program over all frames.

Unknowns (one pytree, `TrackVars`): the identity's shape (S,) and the log focal length
(shared by the clip: VHAP's fixed-camera convention), and per frame the head rotation,
translation, jaw, eyes and expression. The neck stays at zero: with face landmarks only,
neck and global rotation move the face identically, so the global rotation carries the
head pose and the neck is left to the avatar's own refinement.

Camera: fixed, on the +z axis at `camera_distance` looking back at the head (OpenCV
world-to-camera diag(1, -1, -1), t = (0, 0, D)); the principal point is the image centre.

Only the mesh vertices the landmarks touch are posed (`LandmarkRig`): joints come from
J_regressor applied to the blendshapes once (J x 3 x components), so a step costs
T x (landmark vertices) instead of T x V. `rig_forward` equals `flame_forward` on those
vertices (tests/track/test_fit.py checks it against the full model).

Stages: `rigid` (rotation, translation, focal; neutral face), then `face` (everything, with
priors on shape/expression/jaw and velocity + acceleration penalties over time). Each is
Adam through optax, run in jitted blocks of steps so the progress bar shows rate and ETA.
Deterministic: same inputs and config give bit-identical results on one machine.
"""
from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from flashtalker_jax.flame.lbs import batch_rodrigues, rigid_transform
from flashtalker_jax.flame.model import FlameModel
from flashtalker_jax.track.embedding import LandmarkEmbedding
from flashtalker_jax.utils.progress import progress

PER_FRAME = ("rotation", "translation", "jaw_pose", "eyes_pose", "expr")


@dataclasses.dataclass(frozen=True)
class LandmarkRig:
    """FLAME restricted to the vertices under the landmarks.

    template (n, 3), shape_dirs (n, 3, S), expr_dirs (n, 3, E), posedirs (n, 3, P),
    weights (n, J); joint_template (J, 3), joint_shape_dirs (J, 3, S), joint_expr_dirs
    (J, 3, E); corners (L, 3) rows into the n vertices, bary (L, 3)."""
    template: jax.Array
    shape_dirs: jax.Array
    expr_dirs: jax.Array
    posedirs: jax.Array
    weights: jax.Array
    joint_template: jax.Array
    joint_shape_dirs: jax.Array
    joint_expr_dirs: jax.Array
    corners: jax.Array
    bary: jax.Array
    parents: tuple = ()


jax.tree_util.register_dataclass(
    LandmarkRig, data_fields=[f.name for f in dataclasses.fields(LandmarkRig) if f.name != "parents"],
    meta_fields=["parents"])


def make_rig(model: FlameModel, embedding: LandmarkEmbedding, n_shape: int, n_expr: int) -> LandmarkRig:
    faces = np.asarray(model.faces)[embedding.lmk_face_idx]            # (L, 3) vertex ids
    used, corners = np.unique(faces, return_inverse=True)
    reg = np.asarray(model.J_regressor, np.float64)
    shape_dirs = np.asarray(model.shape_dirs, np.float64)[..., :n_shape]
    expr_dirs = np.asarray(model.expr_dirs, np.float64)[..., :n_expr]

    def f32(x):
        return jnp.asarray(x, jnp.float32)

    return LandmarkRig(
        template=f32(np.asarray(model.v_template)[used]), shape_dirs=f32(shape_dirs[used]),
        expr_dirs=f32(expr_dirs[used]), posedirs=f32(np.asarray(model.posedirs)[used]),
        weights=f32(np.asarray(model.weights)[used]),
        joint_template=f32(reg @ np.asarray(model.v_template, np.float64)),
        joint_shape_dirs=f32(np.einsum("jv,vck->jck", reg, shape_dirs)),
        joint_expr_dirs=f32(np.einsum("jv,vck->jck", reg, expr_dirs)),
        corners=jnp.asarray(corners.reshape(faces.shape), jnp.int32),
        bary=f32(embedding.lmk_b_coords), parents=tuple(model.parents))


def rig_forward(rig: LandmarkRig, shape: jax.Array, expr: jax.Array, pose: jax.Array,
                translation: jax.Array) -> jax.Array:
    """Landmarks (T, L, 3) in world space: shape (S,), expr (T, E), pose (T, 5, 3), translation (T, 3)."""
    T = expr.shape[0]
    v = (rig.template + jnp.einsum("vck,k->vc", rig.shape_dirs, shape))[None] \
        + jnp.einsum("vck,tk->tvc", rig.expr_dirs, expr)
    joints = (rig.joint_template + jnp.einsum("jck,k->jc", rig.joint_shape_dirs, shape))[None] \
        + jnp.einsum("jck,tk->tjc", rig.joint_expr_dirs, expr)
    rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(T, -1, 3, 3)
    feature = (rot[:, 1:] - jnp.eye(3)).reshape(T, -1)
    v = v + jnp.einsum("tp,vcp->tvc", feature, rig.posedirs)
    _, rel = rigid_transform(rot, joints, rig.parents)
    skin = jnp.einsum("vj,tjmn->tvmn", rig.weights, rel)
    posed = jnp.einsum("tvmn,tvn->tvm", skin[..., :3, :3], v) + skin[..., :3, 3]
    points = jnp.einsum("tlki,lk->tli", posed[:, rig.corners], rig.bary)
    return points + translation[:, None, :]


def full_pose(vars_: dict) -> jax.Array:
    """(T, 5, 3): global, neck (zero), jaw, left eye, right eye."""
    zero = jnp.zeros_like(vars_["rotation"])
    return jnp.concatenate([vars_["rotation"], zero, vars_["jaw_pose"], vars_["eyes_pose"]], 1).reshape(-1, 5, 3)


def camera_matrices(log_focal: jax.Array, width: int, height: int, distance: float):
    """(K (3, 3), world-to-camera (4, 4)) of the clip's fixed camera."""
    f = jnp.exp(log_focal) * width
    zero, one = jnp.zeros_like(f), jnp.ones_like(f)
    K = jnp.stack([jnp.stack([f, zero, zero + width / 2]), jnp.stack([zero, f, zero + height / 2]),
                   jnp.stack([zero, zero, one])])
    w2c = jnp.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, distance], [0, 0, 0, 1.0]])
    return K, w2c


def project(points: jax.Array, log_focal: jax.Array, width: int, height: int, distance: float) -> jax.Array:
    K, w2c = camera_matrices(log_focal, width, height, distance)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = cam @ K.T
    return uvw[..., :2] / jnp.maximum(uvw[..., 2:3], 1e-3)


def init_vars(landmarks: np.ndarray, rig: LandmarkRig, cfg: ml_collections.ConfigDict,
              width: int, height: int) -> dict:
    """Frontal head placed so its neutral landmarks match each frame's spread and centre."""
    T = landmarks.shape[0]
    neutral = np.asarray(rig_forward(rig, jnp.zeros(rig.shape_dirs.shape[-1]), jnp.zeros((1, rig.expr_dirs.shape[-1])),
                                     jnp.zeros((1, 5, 3)), jnp.zeros((1, 3))))[0]
    focal = cfg.focal_init_over_width * width
    spread_model = neutral[:, :2].std(0).mean()
    spread_img = np.nanstd(landmarks, axis=1).mean(-1)                   # (T,)
    depth = focal * spread_model / spread_img                            # camera-to-head distance
    centre = np.nanmean(landmarks, axis=1) - np.array([width / 2, height / 2])
    tz = cfg.camera_distance - depth
    tx = centre[:, 0] * depth / focal - neutral[:, 0].mean()
    ty = -centre[:, 1] * depth / focal - neutral[:, 1].mean()
    zeros = functools.partial(np.zeros, dtype=np.float32)
    return {"shape": zeros(rig.shape_dirs.shape[-1]), "log_focal": np.float32(np.log(cfg.focal_init_over_width)),
            "rotation": zeros((T, 3)), "translation": np.stack([tx, ty, tz], 1).astype(np.float32),
            "jaw_pose": zeros((T, 3)), "eyes_pose": zeros((T, 6)),
            "expr": zeros((T, rig.expr_dirs.shape[-1]))}


def _robust(residual: jax.Array, delta: float) -> jax.Array:
    """Huber on the 2-D residual length (pixels -> fraction of the image width)."""
    r = jnp.sqrt((residual ** 2).sum(-1) + 1e-12)
    return jnp.where(r < delta, 0.5 * r ** 2 / delta, r - 0.5 * delta)


def _temporal(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    vel = x[1:] - x[:-1]
    acc = vel[1:] - vel[:-1]
    return (vel ** 2).sum(-1).mean(), (acc ** 2).sum(-1).mean()


def loss_terms(vars_: dict, rig: LandmarkRig, target: jax.Array, weight: jax.Array,
               cfg: ml_collections.ConfigDict, width: int, height: int) -> dict:
    """target (T, L, 2) pixels; weight (T, L) (0 where the landmark is unknown)."""
    points = rig_forward(rig, vars_["shape"], vars_["expr"], full_pose(vars_), vars_["translation"])
    pixels = project(points, vars_["log_focal"], width, height, cfg.camera_distance)
    lmk = (_robust((pixels - target) / width, cfg.huber_delta) * weight).sum() / jnp.maximum(weight.sum(), 1.0)
    terms = {"landmarks": cfg.w_landmarks * lmk,
             "shape": cfg.w_shape * (vars_["shape"] ** 2).sum(),
             "expr": cfg.w_expr * (vars_["expr"] ** 2).sum(-1).mean(),
             "jaw": cfg.w_jaw * (vars_["jaw_pose"][:, 1:] ** 2).sum(-1).mean()
             + cfg.w_jaw_closed * jax.nn.relu(-vars_["jaw_pose"][:, 0]).mean(),
             "eyes": cfg.w_eyes * (vars_["eyes_pose"] ** 2).sum(-1).mean(),
             "focal": cfg.w_focal * (vars_["log_focal"] - np.log(cfg.focal_init_over_width)) ** 2}
    for key, w in (("rotation", cfg.w_smooth_pose), ("translation", cfg.w_smooth_translation),
                   ("jaw_pose", cfg.w_smooth_jaw), ("expr", cfg.w_smooth_expr), ("eyes_pose", cfg.w_smooth_eyes)):
        vel, acc = _temporal(vars_[key])
        terms[f"smooth_{key}"] = w * (vel + cfg.acceleration_ratio * acc)
    return terms


def _optimizer(cfg: ml_collections.ConfigDict, free: tuple[str, ...], steps: int):
    """Adam with one learning rate per variable (their units differ: radians, metres, ...)."""
    lrs = dict(cfg.learning_rates)
    transforms = {k: optax.adam(optax.cosine_decay_schedule(lrs[k], steps, alpha=0.05)) for k in free}
    return optax.multi_transform(transforms, {k: k for k in free})


@functools.partial(jax.jit, static_argnames=("free", "cfg_items", "width", "height", "steps", "block"))
def _run_block(free_vars, fixed_vars, opt_state, rig, target, weight, *, free, cfg_items, width, height,
               steps, block):
    cfg = _Settings(cfg_items)
    opt = _optimizer(cfg, free, steps)

    def total(fv):
        return sum(loss_terms({**fixed_vars, **fv}, rig, target, weight, cfg, width, height).values())

    def step(carry, _):
        fv, state = carry
        loss, grads = jax.value_and_grad(total)(fv)
        updates, state = opt.update(grads, state, fv)
        return (optax.apply_updates(fv, updates), state), loss

    (free_vars, opt_state), losses = jax.lax.scan(step, (free_vars, opt_state), None, length=block)
    return free_vars, opt_state, losses


class _Settings:
    """Attribute access to a frozen config (a static jit argument) inside the traced step."""

    def __init__(self, items: tuple):
        for key, value in items:
            setattr(self, key, dict(value) if key == "learning_rates" else value)


def _frozen(cfg: ml_collections.ConfigDict) -> tuple:
    """The config as a hashable static argument (nested dicts -> sorted tuples)."""
    d = cfg.to_dict()
    d["learning_rates"] = tuple(sorted(d["learning_rates"].items()))
    return tuple(sorted((k, v if not isinstance(v, list) else tuple(v)) for k, v in d.items()))


def run_stage(name: str, vars_: dict, free: tuple[str, ...], steps: int, rig: LandmarkRig,
              target: np.ndarray, weight: np.ndarray, cfg: ml_collections.ConfigDict,
              width: int, height: int, block: int = 50) -> tuple[dict, np.ndarray]:
    """Optimise the `free` variables for `steps` Adam steps; returns (vars, loss per step)."""
    free = tuple(sorted(free))
    fixed = {k: v if isinstance(v, jax.Array) else jnp.asarray(v) for k, v in vars_.items() if k not in free}
    fv = {k: v if isinstance(v, jax.Array) else jnp.asarray(v) for k, v in vars_.items() if k in free}
    items = _frozen(cfg)
    opt_state = _optimizer(cfg, free, steps).init(fv)
    losses = []
    target = target if isinstance(target, jax.Array) else jnp.asarray(target, jnp.float32)
    weight = weight if isinstance(weight, jax.Array) else jnp.asarray(weight, jnp.float32)
    with progress(total=steps, desc=f"fit {name}", unit="step") as bar:
        for done in range(0, steps, block):
            n = min(block, steps - done)
            fv, opt_state, block_losses = _run_block(fv, fixed, opt_state, rig, target, weight, free=free,
                                                     cfg_items=items, width=width, height=height,
                                                     steps=steps, block=n)
            losses.append(np.asarray(block_losses))
            if not np.isfinite(losses[-1]).all():
                raise FloatingPointError(f"track stage {name}: loss became NaN/inf near step {done + n}")
            bar.update(n)
            bar.set_postfix(loss=f"{float(losses[-1][-1]):.4g}")
    return {**fixed, **fv}, np.concatenate(losses)


def _shard_frames(vars_: dict, target: np.ndarray, weight: np.ndarray):
    """With several devices: pad the frame axis to a multiple of the device count (edge
    values, weight 0: padded frames only extend the last one) and place every per-frame
    array split over a 1-D `frames` mesh; XLA adds the neighbour exchange the temporal
    terms need. One device: unchanged. Returns (vars, target, weight, frames kept)."""
    devices = jax.devices()
    T = target.shape[0]
    if len(devices) == 1:
        return vars_, target, weight, T
    pad = -T % len(devices)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("frames",))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("frames"))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def edge(x):
        return np.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")

    vars_ = {k: jax.device_put(edge(v), split) if k in PER_FRAME else jax.device_put(v, whole)
             for k, v in vars_.items()}
    weight = np.pad(weight, [(0, pad), (0, 0)])
    return vars_, jax.device_put(edge(target), split), jax.device_put(weight, split), T


def fit_clip(landmarks: np.ndarray, weight: np.ndarray, rig: LandmarkRig, cfg: ml_collections.ConfigDict,
             width: int, height: int, init: dict | None = None) -> tuple[dict, dict]:
    """landmarks (T, L, 2) pixels (embedding order), weight (T, L) -> (vars, per-stage losses).
    `init`: starting vars (init_vars' keys and shapes, e.g. the motion encoder's prediction,
    encoder/track_init.py) instead of the frontal neutral start. A stage with 0 steps is
    skipped (an init that is already turned may need no rigid stage). Frames are split over
    the devices when there are several (_shard_frames)."""
    chex.assert_rank(landmarks, 3)
    chex.assert_equal_shape([landmarks[..., 0], weight])
    if init is None:
        vars_ = init_vars(np.where(weight[..., None] > 0, landmarks, np.nan), rig, cfg, width, height)
    else:
        vars_ = _checked_init(init, rig, landmarks.shape[0])
    vars_, landmarks, weight, T = _shard_frames(vars_, landmarks, weight)
    losses = {}
    for name, free, steps in (("rigid", ("rotation", "translation", "log_focal"), cfg.rigid_steps),
                              ("face", ("shape", "log_focal") + PER_FRAME, cfg.face_steps)):
        if steps > 0:
            vars_, losses[name] = run_stage(name, vars_, free, steps, rig, landmarks, weight, cfg, width, height)
    vars_ = {k: np.asarray(v)[:T] if k in PER_FRAME else np.asarray(v) for k, v in vars_.items()}
    return vars_, losses


def _checked_init(init: dict, rig: LandmarkRig, n_frames: int) -> dict:
    want = {"shape": (rig.shape_dirs.shape[-1],), "log_focal": (), "rotation": (n_frames, 3),
            "translation": (n_frames, 3), "jaw_pose": (n_frames, 3), "eyes_pose": (n_frames, 6),
            "expr": (n_frames, rig.expr_dirs.shape[-1])}
    for key, shape in want.items():
        if np.shape(init.get(key)) != shape:
            raise ValueError(f"init[{key!r}] has shape {np.shape(init.get(key))}, the fit needs {shape}")
    return {k: np.asarray(init[k], np.float32) for k in want}


def reprojection(vars_: dict, rig: LandmarkRig, cfg, width: int, height: int) -> np.ndarray:
    """Fitted landmarks (T, L, 2) in pixels."""
    points = rig_forward(rig, jnp.asarray(vars_["shape"]), jnp.asarray(vars_["expr"]),
                         full_pose({k: jnp.asarray(v) for k, v in vars_.items()}), jnp.asarray(vars_["translation"]))
    return np.asarray(project(points, jnp.asarray(vars_["log_focal"]), width, height, cfg.camera_distance))
