"""The head's rigid transform as the image shows it (GenFaceTalk's E_Trans target).

An image cannot tell the world frame, the camera's distance or its focal length apart;
it shows the head's rotation relative to the camera, where its root joint lands in the
crop and how large it looks. The encoder predicts exactly that, 6 numbers per frame:
  rotation (3)   axis-angle of FRONTAL @ R_view @ R_global: the head's rotation away from
                 looking straight into the camera (0 for a frontal face; the raw camera
                 rotation would sit at 180 degrees, where axis-angle wraps from +pi to -pi)
  position (2)   the root joint's pixel / crop width, minus 0.5 (crop centre = 0)
  log_scale (1)  log(fx / (width * z)): apparent size; z the root's camera depth
`to_camera_code` computes it from FLAME parameters and a camera; `from_camera_code`
inverts it for ANY camera (viewmat, K) and identity shape, giving FLAME global rotation
and translation: the same crop position and size under another person's camera.

FLAME rotates about the root joint J0 (shape and expression dependent), so a world vertex
is R_g (v - J0) + J0 + t and the root lands at J0 + t; static offsets are not used.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from flashtalker_jax.avatar.quaternion import rotmat_to_quat
from flashtalker_jax.flame.lbs import batch_rodrigues, shaped_template
from flashtalker_jax.flame.model import FlameModel, FlameParams

CODE_SIZE = 6
# A head facing +z seen by a camera on the +z axis looking back (OpenCV axes: x right, y
# down, z forward): world-to-camera rotation diag(1, -1, -1), its own inverse.
FRONTAL = jnp.diag(jnp.asarray([1.0, -1.0, -1.0]))


def rest_joints(flame: FlameModel, params: FlameParams) -> jax.Array:
    """(B, J, 3) rest-pose joints of the shaped, expressed template (root, neck, jaw, eyes)."""
    return jnp.einsum("bvc,jv->bjc", shaped_template(flame, params.replace(static_offset=None)),
                      flame.J_regressor)


def root_joint(flame: FlameModel, params: FlameParams) -> jax.Array:
    """(B, 3) rest-pose root joint J0."""
    return rest_joints(flame, params)[:, 0]


def rotmat_to_axis_angle(r: jax.Array) -> jax.Array:
    """(..., 3, 3) -> (..., 3) axis-angle, angle in [0, pi] (through the w >= 0 quaternion)."""
    q = rotmat_to_quat(r)
    v = q[..., 1:]
    norm = jnp.sqrt(jnp.sum(v * v, -1, keepdims=True) + 1e-12)
    angle = 2.0 * jnp.arctan2(norm, q[..., :1])
    return v * angle / norm


def to_camera_code(flame: FlameModel, params: FlameParams, viewmat: jax.Array, K: jax.Array,
                   width: int) -> jax.Array:
    """(B, 6) code of frames (module docstring); viewmat (B, 4, 4) world-to-camera (OpenCV
    axes), K (B, 3, 3) in pixels of a crop `width` wide."""
    r_view, t_view = viewmat[:, :3, :3], viewmat[:, :3, 3]
    root = jnp.einsum("bij,bj->bi", r_view, root_joint(flame, params) + params.translation) + t_view
    rotation = rotmat_to_axis_angle(FRONTAL @ r_view @ batch_rodrigues(params.rotation))
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    z = root[:, 2]
    position = jnp.stack([(fx * root[:, 0] / z + cx) / width - 0.5,
                          (fy * root[:, 1] / z + cy) / width - 0.5], -1)
    log_scale = jnp.log(fx / (width * z))
    return jnp.concatenate([rotation, position, log_scale[:, None]], -1)


def from_camera_code(flame: FlameModel, params: FlameParams, code: jax.Array, viewmat: jax.Array,
                     K: jax.Array, width: int) -> FlameParams:
    """`params` (shape and expression used for J0) with rotation and translation set so the
    head shows `code` (B, 6) through the camera (viewmat (B, 4, 4), K (B, 3, 3), width)."""
    r_view, t_view = viewmat[:, :3, :3], viewmat[:, :3, 3]
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    z = fx / (width * jnp.exp(code[:, 5]))
    root = jnp.stack([((code[:, 3] + 0.5) * width - cx) * z / fx,
                      ((code[:, 4] + 0.5) * width - cy) * z / fy, z], -1)
    r_view_t = jnp.swapaxes(r_view, -1, -2)
    root_world = jnp.einsum("bij,bj->bi", r_view_t, root - t_view)
    rotation = rotmat_to_axis_angle(r_view_t @ FRONTAL @ batch_rodrigues(code[:, :3]))
    return params.replace(rotation=rotation, translation=root_world - root_joint(flame, params))
