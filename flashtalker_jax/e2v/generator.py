"""GGTalker's Identity-Gaussian Generator: one image -> a UV Gaussian map -> our avatar's Gaussians.

The map M (B, R, R, 14) lives on the head's UV chart (the procedural head's, or
FLAME_texture.npz for real FLAME); texel (i, j) sits at UV ((j + 0.5) / R, (i + 0.5) / R),
row i = v, the same grid convention as avatar/sampling.uv_grid_samples. Its channels
(MAP_SPLITS) are one Gaussian's parameters in its triangle's local frame (avatar/binding.py):
  offset 3       local mean (triangle units)                 = offset_scale * raw
  log_scale 3    log-scale RELATIVE to the placement's initial scale (the UV-grid spacing),
                 so one map serves placements of any density  = raw
  rotation 4     local quaternion wxyz (normalised when bound) = (1, 0, 0, 0) + raw
  opacity 1      opacity logit                                = logit(init_opacity) + raw
  colour 3       RGB logit                                    = logit(unwrapped image) + raw

Architecture (why): a CPU-sized network cannot learn the image -> UV correspondence from a
handful of identities, and it does not have to: the source frame is tracked (FLAME params
and camera), so every UV texel has a 3-D point on the source mesh and a pixel in the
source image. The generator therefore
  1. encodes the image with a few 3x3 convolutions at its own resolution (local context:
     edges, shading; `image_stride` > 1 pools first for 256/512 crops),
  2. unwraps those features into UV space by projecting every texel's surface point into
     the image (bilinear sample), adding how squarely the texel's triangle faces the camera
     (unseen texels: back of the head, under the chin) and an in-frame flag,
  3. runs a small conv U-Net in UV space (two downsamplings, skip connections, a learned
     UV positional embedding so it knows where on the head a texel is), whose zero-
     initialised last layer outputs the residuals above.
Neighbouring texels are neighbouring surface points, so UV convolutions in-paint unseen
texels from seen ones and smooth geometry; the colour skip (the unwrapped image colour)
makes the untrained generator already a projective texture (adapt's init_colors_from_frame
idea), and training learns geometry, opacity, shading removal and in-painting on top.
There is no occlusion test (a z-buffer): occluded texels get what covers them, which the
facing cue lets the network learn to discount.

`sample_at_placement` reads M at every UV-placed Gaussian's UV coordinate (bilinear), giving
(B, N, 14) per Gaussian; `avatar_parameters` turns those into the GaussianAvatar template
values (local_means, local_log_scales, local_quats, opacity_logits, color_logits). Teeth
Gaussians have no UV coordinate: they keep the template's initial values (zero offset, the
initial scale, identity rotation, initial opacity, grey colour logit 0), not the map's.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from flashtalker_jax.avatar.binding import bound_anchors, triangle_frames
from flashtalker_jax.avatar.sampling import Placement, uv_grid_samples

MAP_SPLITS = {"offset": 3, "log_scale": 3, "rotation": 4, "opacity": 1, "colour": 3}
MAP_CHANNELS = sum(MAP_SPLITS.values())   # 14
COLOUR_CLIP = 0.02                        # unwrapped colours are clipped to [c, 1 - c] before the logit


class ChartConst(nnx.Variable):
    """Fixed UV-chart tables of the generator (saved with it: a prior carries its chart)."""


@dataclasses.dataclass(frozen=True)
class UVChart:
    """The covered texels of an R x R UV map: face (T,) int32 and barycentrics (T, 3) of
    each on the mesh, cell (T,) int32 its flat index row * R + col."""
    resolution: int
    face: np.ndarray
    barycentrics: np.ndarray
    cell: np.ndarray


def placement_uv(placement: Placement, vt: np.ndarray, ft: np.ndarray) -> np.ndarray:
    """(N_uv, 2) UV coordinates of the non-teeth Gaussians of a placement (the teeth, which
    come last, have none): the barycentric mix of their UV triangle's corners."""
    n_uv = int(np.sum(~placement.is_teeth))
    if placement.is_teeth[:n_uv].any():
        raise ValueError("placement must list its UV Gaussians before its teeth")
    corners = vt[ft[placement.face_ids[:n_uv]]]                  # (N, 3, 2)
    return np.einsum("nj,njc->nc", placement.barycentrics[:n_uv], corners).astype(np.float32)


def build_chart(vt: np.ndarray, ft: np.ndarray, resolution: int) -> UVChart:
    """The chart of an R x R map: the UV grid samples (sampling.uv_grid_samples) and their cells."""
    face, bary = uv_grid_samples(vt, ft, resolution)
    uv = np.einsum("nj,njc->nc", bary, vt[ft[face]])
    col = np.clip(np.floor(uv[:, 0] * resolution), 0, resolution - 1).astype(np.int32)
    row = np.clip(np.floor(uv[:, 1] * resolution), 0, resolution - 1).astype(np.int32)
    return UVChart(resolution, face.astype(np.int32), bary.astype(np.float32), row * resolution + col)


def bilinear(grid: Float[Array, "B H W C"], xy: Float[Array, "B T 2"]) -> Float[Array, "B T C"]:
    """Bilinear samples of a grid at continuous coordinates xy (x = column, y = row) where
    cell (r, c) has its centre at (c + 0.5, r + 0.5); clamped at the border."""
    b, h, w, c = grid.shape
    x, y = xy[..., 0] - 0.5, xy[..., 1] - 0.5
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    flat = grid.reshape(b, h * w, c)

    def at(yy, xx):
        idx = jnp.clip(yy, 0, h - 1).astype(jnp.int32) * w + jnp.clip(xx, 0, w - 1).astype(jnp.int32)
        return jnp.take_along_axis(flat, idx[..., None], axis=1)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def project(points: Float[Array, "B T 3"], viewmat: Float[Array, "B 4 4"], K: Float[Array, "B 3 3"]):
    """(pixel xy (B, T, 2), camera-space points (B, T, 3)); depth clamped away from 0."""
    cam = jnp.einsum("bij,btj->bti", viewmat[:, :3, :3], points) + viewmat[:, None, :3, 3]
    z = jnp.maximum(cam[..., 2:3], 1e-6)
    pix = jnp.einsum("bij,btj->bti", K, cam / z)[..., :2]
    return pix, cam


def pool_image(image: Float[Array, "B H W 3"], K: Float[Array, "B 3 3"], stride: int):
    """(image average-pooled by `stride`, K in the pooled pixels); unchanged for stride 1."""
    if stride == 1:
        return image, K
    b, h, w, c = image.shape
    return image.reshape(b, h // stride, stride, w // stride, stride, c).mean((2, 4)), K.at[:, :2].divide(stride)


def texel_views(vertices: Float[Array, "B V 3"], faces, texel_face, texel_bary, viewmat: Float[Array, "B 4 4"],
                K: Float[Array, "B 3 3"], size: tuple[int, int]):
    """Where the source camera sees every chart texel's surface point: (pixel xy (B, T, 2),
    facing (B, T, 1): how squarely its triangle faces the camera (1 = straight on, <= 0 =
    seen from behind: back of the head, under the chin), inside (B, T, 1): 1 when the pixel
    lies in the (H, W) = size image)."""
    points = bound_anchors(vertices, faces, texel_face, texel_bary)
    pix, cam = project(points, viewmat, K)
    rot, _ = triangle_frames(vertices, faces)
    normal = rot[:, texel_face][..., 1]                                  # a1 column: the normal
    normal_cam = jnp.einsum("bij,btj->bti", viewmat[:, :3, :3], normal)
    view_dir = cam / jnp.linalg.norm(cam, axis=-1, keepdims=True)
    facing = -jnp.sum(normal_cam * view_dir, -1, keepdims=True)
    extent = jnp.asarray(tuple(size)[::-1], jnp.float32)
    inside = jnp.all((pix >= 0) & (pix <= extent), -1, keepdims=True).astype(jnp.float32)
    return pix, facing, inside


def scatter_texels(texel: Float[Array, "B T C"], cell, resolution: int) -> Float[Array, "B R R C"]:
    """Per-texel values onto the R x R grid at their cells (zero where the chart has no texel)."""
    b, r = texel.shape[0], resolution
    grid = jnp.zeros((b, r * r, texel.shape[-1]), texel.dtype)
    return grid.at[:, cell].set(texel).reshape(b, r, r, -1)


def compose_map(raw: Float[Array, "B R R 14"], colour: Float[Array, "B R R 3"], offset_scale: float,
                init_opacity_logit: float) -> Float[Array, "B R R 14"]:
    """The map (module docstring's MAP_SPLITS parameterisation) from a network's raw residuals
    and the unwrapped colour (already clipped to [COLOUR_CLIP, 1 - COLOUR_CLIP]): zero
    residuals give the projective texture with the template's initial values."""
    bounds = np.cumsum(list(MAP_SPLITS.values()))[:-1]
    parts = dict(zip(MAP_SPLITS, jnp.split(raw, bounds, axis=-1)))
    identity = jnp.array([1.0, 0.0, 0.0, 0.0])
    return jnp.concatenate([
        offset_scale * parts["offset"],
        parts["log_scale"],
        identity + parts["rotation"],
        init_opacity_logit + parts["opacity"],
        jnp.log(colour / (1 - colour)) + parts["colour"]], -1)


def bind_chart(generator: nnx.Module, chart: UVChart, faces: np.ndarray, image_stride: int,
               offset_scale: float, init_opacity: float) -> None:
    """What every generator holds beside its network (both kinds: same attribute names, so
    saved priors name the chart tables alike): the UV chart's texel tables, the mesh faces,
    and the settings compose_map and pool_image read."""
    generator.resolution, generator.image_stride = chart.resolution, int(image_stride)
    generator.offset_scale = float(offset_scale)
    generator.init_opacity_logit = float(np.log(init_opacity / (1 - init_opacity)))
    generator.texel_face = ChartConst(jnp.asarray(chart.face))
    generator.texel_bary = ChartConst(jnp.asarray(chart.barycentrics))
    generator.texel_cell = ChartConst(jnp.asarray(chart.cell))
    generator.faces = ChartConst(jnp.asarray(faces, jnp.int32))


class UNet(nnx.Module):
    """Two-level conv U-Net (3x3 convs, GELU, stride-2 down, nearest-up + skip), zero last layer."""

    def __init__(self, c_in: int, width: int, c_out: int, rngs: nnx.Rngs):
        conv = lambda a, b, s=1: nnx.Conv(a, b, (3, 3), strides=s, padding="SAME", rngs=rngs)  # noqa: E731
        self.inp = conv(c_in, width)
        self.down1 = conv(width, 2 * width, 2)
        self.down2 = conv(2 * width, 4 * width, 2)
        self.mid = conv(4 * width, 4 * width)
        self.up2 = conv(4 * width + 2 * width, 2 * width)
        self.up1 = conv(2 * width + width, width)
        self.out = nnx.Conv(width, c_out, (3, 3), padding="SAME", kernel_init=nnx.initializers.zeros,
                            rngs=rngs)

    def __call__(self, x):
        g = jax.nn.gelu
        e0 = g(self.inp(x))
        e1 = g(self.down1(e0))
        e2 = g(self.mid(g(self.down2(e1))))
        d1 = g(self.up2(jnp.concatenate([_upsample(e2, e1.shape[1:3]), e1], -1)))
        d0 = g(self.up1(jnp.concatenate([_upsample(d1, e0.shape[1:3]), e0], -1)))
        return self.out(d0)


def _upsample(x, size):
    return jax.image.resize(x, (x.shape[0],) + tuple(size) + (x.shape[-1],), "nearest")


class IdentityGaussianGenerator(nnx.Module):
    """(image, tracked source mesh + camera) -> UV Gaussian map (module docstring).

    chart: the map's UVChart; faces (F, 3) the mesh (texel faces index it); image_width /
    unet_width: channels; pos_dim: UV positional embedding channels; image_stride: average-
    pool factor before the image encoder (1 for 64-128 px crops, 2-4 for 256-512);
    offset_scale: the offset channels' factor (keeps early steps from throwing Gaussians
    off their triangles); init_opacity: opacity of the untrained map."""

    def __init__(self, chart: UVChart, faces: np.ndarray, *, image_width: int = 16, unet_width: int = 32,
                 pos_dim: int = 8, image_stride: int = 1, offset_scale: float = 0.1,
                 init_opacity: float = 0.9, rngs: nnx.Rngs):
        r = chart.resolution
        if r % 4:
            raise ValueError(f"UV map resolution {r} must divide by 4 (two U-Net downsamplings)")
        bind_chart(self, chart, faces, image_stride, offset_scale, init_opacity)
        self.enc1 = nnx.Conv(3, image_width, (3, 3), padding="SAME", rngs=rngs)
        self.enc2 = nnx.Conv(image_width, image_width, (3, 3), padding="SAME", rngs=rngs)
        self.uv_embed = nnx.Param(0.1 * jax.random.normal(rngs.params(), (r, r, pos_dim)))
        # UNet input: image features + raw colour (3) + facing + in-frame + coverage + embedding.
        self.unet = UNet(image_width + 3 + 3 + pos_dim, unet_width, MAP_CHANNELS, rngs)

    def __call__(self, image: Float[Array, "B S S 3"], vertices: Float[Array, "B V 3"],
                 viewmat: Float[Array, "B 4 4"], K: Float[Array, "B 3 3"]) -> Float[Array, "B R R 14"]:
        """image in [0, 1] (the head on the training background), vertices the source
        frame's posed mesh, camera world-to-camera OpenCV with K in pixels of the image."""
        b = image.shape[0]
        chex.assert_rank(image, 4)
        chex.assert_shape([viewmat, K], [(b, 4, 4), (b, 3, 3)])
        unwrapped = self.unwrap(image, vertices, viewmat, K)           # (B, R, R, C)
        r = self.resolution
        colour = unwrapped[..., self.enc2.out_features:self.enc2.out_features + 3]
        colour = jnp.clip(colour, COLOUR_CLIP, 1 - COLOUR_CLIP)
        x = jnp.concatenate([unwrapped, jnp.broadcast_to(self.uv_embed[...], (b, r, r, self.uv_embed.shape[-1]))], -1)
        out = compose_map(self.unet(x), colour, self.offset_scale, self.init_opacity_logit)
        chex.assert_shape(out, (b, r, r, MAP_CHANNELS))
        return out

    def unwrap(self, image, vertices, viewmat, K) -> Float[Array, "B R R C"]:
        """Image features, raw colour, facing, in-frame and coverage per UV texel (zero where
        the chart has no texel)."""
        image, K = pool_image(image, K, self.image_stride)
        feats = jax.nn.gelu(self.enc2(jax.nn.gelu(self.enc1(image))))
        pix, facing, inside = texel_views(vertices, self.faces[...], self.texel_face[...], self.texel_bary[...],
                                          viewmat, K, image.shape[1:3])
        sampled = bilinear(jnp.concatenate([feats, image], -1), pix)    # (B, T, C + 3)
        texel = jnp.concatenate([sampled * inside, facing, inside, jnp.ones_like(facing)], -1)
        return scatter_texels(texel, self.texel_cell[...], self.resolution)


def sample_at_placement(uv_map: Float[Array, "B R R 14"], uv: Float[Array, "N 2"]) -> Float[Array, "B N 14"]:
    """The map read at every Gaussian's UV coordinate (bilinear, texel centres at (j + 0.5) / R)."""
    b, r = uv_map.shape[0], uv_map.shape[1]
    chex.assert_shape(uv, (None, 2))
    xy = jnp.broadcast_to(uv * r, (b,) + uv.shape)
    out = bilinear(uv_map, xy)
    chex.assert_shape(out, (b, uv.shape[0], MAP_CHANNELS))
    return out


def avatar_parameters(samples: Float[Array, "B Nuv 14"], init_log_scale: Float[Array, "N"],
                      init_opacity_logit: float) -> dict[str, Array]:
    """GaussianAvatar template values (B, N, ...) of a placement of N Gaussians whose first
    Nuv are UV-placed (their samples) and the rest teeth (template values, module
    docstring). init_log_scale (N,): the placement's initial local log-scale (per axis)."""
    b, n_uv = samples.shape[:2]
    n = init_log_scale.shape[0]
    n_teeth = n - n_uv
    bounds = np.cumsum(list(MAP_SPLITS.values()))[:-1]
    p = dict(zip(MAP_SPLITS, jnp.split(samples, bounds, axis=-1)))

    def with_teeth(uv_part, teeth_row):
        teeth = jnp.broadcast_to(jnp.asarray(teeth_row, uv_part.dtype), (b, n_teeth) + uv_part.shape[2:])
        return jnp.concatenate([uv_part, teeth], 1)

    base_scale = jnp.broadcast_to(init_log_scale[None, :, None], (b, n, 3))
    return {
        "local_means": with_teeth(p["offset"], jnp.zeros(3)),
        "local_log_scales": base_scale + with_teeth(p["log_scale"], jnp.zeros(3)),
        "local_quats": with_teeth(p["rotation"], jnp.array([1.0, 0, 0, 0])),
        "opacity_logits": with_teeth(p["opacity"], jnp.full(1, init_opacity_logit))[..., 0],
        "color_logits": with_teeth(p["colour"], jnp.zeros(3)),
    }


def initial_log_scale(placement: Placement, template: np.ndarray, faces: np.ndarray,
                      init_scale_factor: float) -> np.ndarray:
    """(N,) initial local log-scale of a placement, exactly as GaussianAvatar computes it."""
    k = np.asarray(triangle_frames(jnp.asarray(template), jnp.asarray(faces))[1])[placement.face_ids]
    return np.log(np.maximum(placement.spacing * init_scale_factor, 1e-8) / k).astype(np.float32)
