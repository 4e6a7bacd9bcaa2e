"""Adaptation losses: photometric, binding regularisers, lip-guided Gaussian supervision.

- Photometric (GaussianAvatars / 3DGS): w_l1 * L1 + w_ssim * (1 - SSIM), with SSIM from
  metrics.image (Gaussian window 11, sigma 1.5), images (B, H, W, 3) in [0, 1].
- Binding regularisers (GaussianAvatars), over active Gaussians, in triangle units:
  position  mean(relu(|mu_local| - pos_threshold))       (keeps Gaussians near their face)
  scale     mean(relu(exp(s_local) - limit))             (keeps them no larger than it)
  with limit = max(scale_threshold, factor * initial local scale) per Gaussian.
- Perceptual (optional): weight * LPIPS(render, target) (metrics/lpips.py, AlexNet or
  VGG) with user-supplied weights, frozen; images mapped from [0, 1] to [-1, 1].
- Lip-guided Gaussian supervision (FlashTalker names the idea; its paper text is not
  public, so this is our reading, two terms):
  1. lip anchoring: mean over lip Gaussians of |mu_local|^2, the squared distance (in
     triangle units) between each deformed lip Gaussian and its anchor on the tracked,
     expression-driven lip surface. The offset MLP can then only refine appearance near
     the lips, not move them away from where the expression puts the mesh: lip motion in
     the render is the expression's lip motion.
  2. lip silhouette: the lip Gaussians are rendered in an extra channel (1 on lip
     Gaussians, 0 elsewhere, occlusion included) in the same rasterizer pass as the
     colours; that soft lip mask is compared (L1) with the lip region of the tracked
     landmarks projected into the image (inside the outer lip contour and outside the
     inner one, iBUG-68 points 48-59 and 60-67). This ties the image-space lip shape of
     the Gaussians to the tracked lips frame by frame.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float

from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import INNER_LIP, OUTER_LIP
from flashtalker_jax.metrics.image import ssim
from flashtalker_jax.render import camera

# Training projection: depth clamped (render/camera.project_points) so points at or behind
# the camera keep the loss finite.
MIN_DEPTH = 1e-6
project_points = functools.partial(camera.project_points, min_depth=MIN_DEPTH)


def photometric_loss(render: Float[Array, "B H W 3"], target: Float[Array, "B H W 3"],
                     w_l1: float, w_ssim: float) -> tuple[Array, dict[str, Array]]:
    l1 = jnp.mean(jnp.abs(render - target))
    d_ssim = 1.0 - jnp.mean(ssim(render, target, data_range=1.0))
    return w_l1 * l1 + w_ssim * d_ssim, {"l1": l1, "d_ssim": d_ssim}


def make_perceptual_loss(loss_cfg) -> Callable[[Array, Array], Array] | None:
    """perceptual(render, target) -> mean LPIPS of (B, H, W, 3) images in [0, 1], or None
    when loss_cfg.perceptual == 0. The weights are read once here: perceptual_weights is
    one file holding both the backbone (`features.<i>.*` or lpips's `net.slice<k>.<i>.*`)
    and the lin layers (`lin<l>.model.1.weight`), e.g. an lpips LPIPS state dict;
    perceptual_backbone, when set, is a separate torchvision backbone file."""
    from flashtalker_jax.metrics.lpips import load_lpips

    if loss_cfg.perceptual == 0:
        return None
    if loss_cfg.perceptual < 0:
        raise ConfigError(f"task.loss.perceptual={loss_cfg.perceptual} must be >= 0 (0 = off)")
    paths = {"perceptual_weights": loss_cfg.perceptual_weights,
             "perceptual_backbone": loss_cfg.perceptual_backbone or loss_cfg.perceptual_weights}
    for key, path in paths.items():
        if not path or not Path(path).is_file():
            raise ConfigError(f"task.loss.perceptual={loss_cfg.perceptual} needs LPIPS weights, but "
                              f"task.loss.{key}={path!r} is not a file: pass "
                              f"--config.task.loss.{key}=PATH (local file, never downloaded) or "
                              "set --config.task.loss.perceptual=0")
    network = load_lpips(loss_cfg.perceptual_net, paths["perceptual_backbone"],
                         paths["perceptual_weights"])
    graphdef, state = nnx.split(network)

    def perceptual(render: Float[Array, "B H W 3"], target: Float[Array, "B H W 3"]) -> Array:
        net = nnx.merge(graphdef, jax.lax.stop_gradient(state))
        return jnp.mean(net(2.0 * render - 1.0, 2.0 * target - 1.0))

    return perceptual


def _masked_mean(values: Float[Array, "B N"], mask: Bool[Array, "N"]) -> Array:
    weights = jnp.broadcast_to(mask, values.shape).astype(values.dtype)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def binding_regularizers(local_means: Float[Array, "B N 3"], local_log_scales: Float[Array, "B N 3"],
                         active: Bool[Array, "N"], pos_threshold: float,
                         scale_limit: Float[Array, "N"]) -> tuple[Array, Array]:
    """(position, scale) regularisers of GaussianAvatars (module docstring), unweighted.
    scale_limit (N,): per-Gaussian scale threshold (see `scale_limits`)."""
    dist = jnp.sqrt(jnp.sum(local_means**2, -1) + 1e-12)
    position = _masked_mean(jax.nn.relu(dist - pos_threshold), active)
    excess = jax.nn.relu(jnp.exp(local_log_scales) - scale_limit[:, None])
    scale = _masked_mean(jnp.mean(excess, -1), active)
    return position, scale


def scale_limits(init_scale: Float[Array, "N"], threshold: float, factor: float) -> Float[Array, "N"]:
    """max(threshold, factor * initial local scale): GaussianAvatars' 0.6 assumes at least
    one Gaussian per triangle; a coarse UV grid starts with Gaussians larger than their
    triangle, which the plain threshold would shrink into holes."""
    return jnp.maximum(threshold, factor * init_scale)


def lip_anchor_loss(local_means: Float[Array, "B N 3"], is_lip: Bool[Array, "N"]) -> Array:
    return _masked_mean(jnp.sum(local_means**2, -1), is_lip)


def polygon_mask(polygon: Float[Array, "B P 2"], height: int, width: int) -> Float[Array, "B H W"]:
    """1 at pixel centres inside the closed polygon (even-odd crossing rule), else 0."""
    ys, xs = jnp.meshgrid(jnp.arange(height) + 0.5, jnp.arange(width) + 0.5, indexing="ij")
    a = polygon[:, :, None, None, :]
    b = jnp.roll(polygon, -1, axis=1)[:, :, None, None, :]
    ay, by = a[..., 1], b[..., 1]
    straddles = (ay > ys) != (by > ys)
    t = (ys - ay) / jnp.where(by == ay, 1.0, by - ay)
    x_cross = a[..., 0] + t * (b[..., 0] - a[..., 0])
    crossings = jnp.sum(straddles & (xs < x_cross), axis=1)
    return (crossings % 2).astype(jnp.float32)


def lip_region_target(landmarks: Float[Array, "B L 3"], viewmat, K, height: int, width: int
                      ) -> Float[Array, "B H W"]:
    """Tracked lip region: inside the outer lip contour and outside the inner one."""
    outer = project_points(landmarks[:, list(OUTER_LIP)], viewmat, K)
    inner = project_points(landmarks[:, list(INNER_LIP)], viewmat, K)
    return polygon_mask(outer, height, width) * (1.0 - polygon_mask(inner, height, width))


def lip_silhouette_loss(rendered_lip: Float[Array, "B H W"], target: Float[Array, "B H W"]) -> Array:
    return jnp.mean(jnp.abs(rendered_lip - target))
