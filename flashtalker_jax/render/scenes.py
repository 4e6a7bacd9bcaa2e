"""Random Gaussian scenes and cameras for tests and benchmarks (explicit PRNG keys)."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from flashtalker_jax.render.sh import num_sh_bases


class Scene(NamedTuple):
    means: jnp.ndarray      # (N, 3)
    quats: jnp.ndarray      # (N, 4) wxyz, not normalised
    scales: jnp.ndarray     # (N, 3)
    opacities: jnp.ndarray  # (N,)
    colors: jnp.ndarray     # (N, C) or SH coefficients (N, K, 3)


def random_scene(key, n: int, *, channels: int = 3, sh_degree: int | None = None,
                 extent: float = 0.5, depth: float = 2.5, log_scale: float = -3.5,
                 behind_fraction: float = 0.0, huge_fraction: float = 0.0,
                 tiny_fraction: float = 0.0) -> Scene:
    """n Gaussians in a box of half-size `extent` around (0, 0, depth) (in front of an
    identity camera). Fractions of them are moved behind the camera (z < 0), made huge
    (scale ~ extent) or tiny (scale ~ 1e-4)."""
    ks = jax.random.split(key, 8)
    means = jax.random.uniform(ks[0], (n, 3), minval=-extent, maxval=extent)
    means = means.at[:, 2].add(depth)
    scales = jnp.exp(log_scale + 0.5 * jax.random.normal(ks[1], (n, 3)))
    u = jax.random.uniform(ks[2], (n,))
    behind = u < behind_fraction
    huge = (u >= behind_fraction) & (u < behind_fraction + huge_fraction)
    tiny = (u >= behind_fraction + huge_fraction) & (
        u < behind_fraction + huge_fraction + tiny_fraction)
    means = means.at[:, 2].set(jnp.where(behind, -means[:, 2], means[:, 2]))
    scales = jnp.where(huge[:, None], extent * scales / jnp.exp(log_scale), scales)
    scales = jnp.where(tiny[:, None], 1e-4, scales)
    quats = jax.random.normal(ks[3], (n, 4))
    opacities = jax.random.uniform(ks[4], (n,), minval=0.05, maxval=0.95)
    if sh_degree is None:
        colors = jax.random.uniform(ks[5], (n, channels))
    else:
        colors = 0.3 * jax.random.normal(ks[5], (n, num_sh_bases(sh_degree), 3))
    return Scene(means, quats, scales, opacities, colors)


def look_at_viewmat(eye, target) -> jnp.ndarray:
    """World-to-camera (4, 4), OpenCV axes (y down), camera at eye looking at target."""
    eye, target = jnp.asarray(eye, jnp.float32), jnp.asarray(target, jnp.float32)
    forward = target - eye
    forward = forward / jnp.linalg.norm(forward)
    right = jnp.cross(forward, jnp.array([0.0, -1.0, 0.0]))
    right = right / jnp.linalg.norm(right)
    down = jnp.cross(forward, right)
    rot = jnp.stack([right, down, forward])
    view = jnp.eye(4).at[:3, :3].set(rot).at[:3, 3].set(-rot @ eye)
    return view


def orbit_cameras(n: int, *, radius: float = 2.5, target=(0.0, 0.0, 2.5),
                  arc: float = 0.6) -> jnp.ndarray:
    """n viewmats (n, 4, 4) on a horizontal arc of `arc` radians facing target, the
    middle one at the origin looking down +z (the identity camera's view)."""
    target = jnp.asarray(target, jnp.float32)
    angles = jnp.linspace(-arc / 2, arc / 2, n) if n > 1 else jnp.zeros(1)
    eyes = jnp.stack([radius * jnp.sin(angles), jnp.zeros(n),
                      target[2] - radius * jnp.cos(angles)], axis=-1)
    return jax.vmap(lambda e: look_at_viewmat(e, target))(eyes)


def intrinsics(width: int, height: int, fov_scale: float = 1.0) -> jnp.ndarray:
    """Pinhole K (3, 3) with focal length fov_scale * width, centred principal point."""
    f = fov_scale * width
    return jnp.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
