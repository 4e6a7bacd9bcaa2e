"""GenFaceTalk's identity learning (section 3.2) as a second one-shot generator beside
GGTalker's UV U-Net (generator.py): task.generator.kind = "genfacetalk".

Same call and output as IdentityGaussianGenerator: (image, tracked source mesh vertices,
viewmat, K) -> the (B, R, R, 14) UV Gaussian map on the same chart with the same MAP_SPLITS
parameterisation (generator.compose_map), so the e2v task, the prior folder, `oneshot`,
`adapt --prior` and eval read it unchanged. One texel = one initial Gaussian; the paper's
pieces map onto ours as
  E_identity (Eq. 7)   the motion encoder's strided ConvNet (encoder/model.Backbone, "same
                       architecture as E_img") on the SOURCE crop: its per-level maps (the
                       hierarchical features) and its flattened-and-projected vector
  x_S^initial          a learned embedding per texel (the initial Gaussians' features)
  E_global (Eq. 8)     an MLP per texel over [texel embedding, identity vector]
  Replace (Eq. 9)      what our binding does already: the map holds Gaussians in their
                       triangles' local frames and the avatar binds them to the DRIVEN FLAME
                       mesh, so the driving mesh positions replace the source's by construction
  E_local (Eq. 10)     an MLP per texel over the hierarchical maps sampled where the source
                       camera sees the texel's surface point (generator.texel_views: the
                       projection, plus the facing and in-frame cues the U-Net gets too)
  fusion (Eq. 11)      an MLP over [global, local] -> the 14 raw residuals, last layer zero

The paper calls E_global / E_local convolutional; per-texel MLPs are their 1x1 case over
the Gaussians. The contrast with GGTalker is deliberate: NO convolution in UV space, so
texels share nothing but the identity vector (and the learned weights): an unseen texel
(back of the head) gets its appearance from its embedding and the global vector, not from
its seen neighbours. token_rank > 0 adds one cheap exchange between texels before the
fusion (TokenMix: a rank-k learned mixing over the texel axis, MLP-Mixer style, zero-
initialised): a measured variant, not the paper's. Both generators carry the same colour skip (the unwrapped source
colour's logit), so untrained they return the same map, the projective texture: their
difference after training is what their networks learned.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from flashtalker_jax.e2v.generator import (COLOUR_CLIP, MAP_CHANNELS, UVChart, bilinear, bind_chart, compose_map,
                                           pool_image, scatter_texels, texel_views)
from flashtalker_jax.encoder.model import Backbone


class TexelMlp(nnx.Module):
    """Two linear layers with a GELU, applied to every texel (a 1x1 convolution over Gaussians)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, rngs: nnx.Rngs, zero_out: bool = False):
        self.hidden = nnx.Linear(d_in, hidden, rngs=rngs)
        init = nnx.initializers.zeros if zero_out else nnx.nn.linear.default_kernel_init
        self.out = nnx.Linear(hidden, d_out, kernel_init=init, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.gelu(self.hidden(x)))


def level_coordinates(xy: Float[Array, "B T 2"], levels: int) -> list[jax.Array]:
    """xy (image pixels, cell (r, c) centred at (c + 0.5, r + 0.5)) on each of `levels`
    stride-2 maps of Backbone. A 3x3 stride-2 SAME convolution of an even-sized map pads
    (0, 1), so output cell i is centred on input pixel 2i + 1: x' = (x - 0.5) / 2 per level."""
    out = []
    for _ in range(levels):
        xy = (xy - 0.5) / 2
        out.append(xy)
    return out


class TokenMix(nnx.Module):
    """h + up(gelu(down(h))) with down (k, T), up (T, k) over the texel axis of h (B, T, C):
    every texel may read any other (an unseen one its seen counterparts) through k learned
    mixtures; up starts at zero, so the block starts as the identity."""

    def __init__(self, texels: int, rank: int, rngs: nnx.Rngs):
        self.down = nnx.Param(jax.random.normal(rngs.params(), (rank, texels)) / np.sqrt(texels))
        self.up = nnx.Param(jnp.zeros((texels, rank)))

    def __call__(self, h: Float[Array, "B T C"]) -> Float[Array, "B T C"]:
        mixed = jax.nn.gelu(jnp.einsum("kt,btc->bkc", self.down[...], h))
        return h + jnp.einsum("tk,bkc->btc", self.up[...], mixed)


class GenFaceTalkIdentityGenerator(nnx.Module):
    """(image, tracked source mesh + camera) -> UV Gaussian map (module docstring).

    chart / faces: as IdentityGaussianGenerator; image_resolution: the crop side the encoder
    sees (task.resolution / image_stride; its last map is flattened, so it is fixed);
    widths / feature: the ConvNet's channels per stride-2 level and its vector size;
    texel_dim: the learned per-texel embedding; width: every per-texel MLP's width;
    token_rank: TokenMix rank before the fusion (0 = none, the paper's per-Gaussian form);
    image_stride, offset_scale, init_opacity: as IdentityGaussianGenerator."""

    def __init__(self, chart: UVChart, faces: np.ndarray, *, image_resolution: int,
                 widths: tuple[int, ...] = (16, 32, 64, 64), feature: int = 128, texel_dim: int = 16,
                 width: int = 64, token_rank: int = 0, image_stride: int = 1, offset_scale: float = 0.1,
                 init_opacity: float = 0.9, rngs: nnx.Rngs):
        bind_chart(self, chart, faces, image_stride, offset_scale, init_opacity)
        self.image_resolution = int(image_resolution)
        self.identity = Backbone(self.image_resolution, tuple(widths), feature, rngs)
        self.texel_embed = nnx.Param(0.1 * jax.random.normal(rngs.params(), (len(chart.face), texel_dim)))
        self.global_branch = TexelMlp(texel_dim + feature, width, width, rngs)
        # local input: every level's features + raw colour (3) + facing + in-frame
        self.local_branch = TexelMlp(sum(widths) + 3 + 2, width, width, rngs)
        self.mix = TokenMix(len(chart.face), token_rank, rngs) if token_rank else None
        self.fuse = TexelMlp(2 * width, width, MAP_CHANNELS, rngs, zero_out=True)

    def __call__(self, image: Float[Array, "B S S 3"], vertices: Float[Array, "B V 3"],
                 viewmat: Float[Array, "B 4 4"], K: Float[Array, "B 3 3"]) -> Float[Array, "B R R 14"]:
        """image in [0, 1] (the head on the training background), vertices the source
        frame's posed mesh, camera world-to-camera OpenCV with K in pixels of the image."""
        b, r = image.shape[0], self.resolution
        chex.assert_rank(image, 4)
        chex.assert_shape([viewmat, K], [(b, 4, 4), (b, 3, 3)])
        image, K = pool_image(image, K, self.image_stride)
        if image.shape[1:3] != (self.image_resolution,) * 2:
            raise ValueError(f"the identity encoder was built for {self.image_resolution} px crops (after "
                             f"image_stride {self.image_stride}), got {image.shape[1:3]}")
        maps, vector = self.identity.features(image)
        pix, facing, inside = texel_views(vertices, self.faces[...], self.texel_face[...], self.texel_bary[...],
                                          viewmat, K, image.shape[1:3])
        colour = bilinear(image, pix) * inside                            # (B, T, 3), as the unwrap's
        sampled = [bilinear(m, xy) for m, xy in zip(maps, level_coordinates(pix, len(maps)))]
        # out-of-frame texels read nothing (the unwrap's rule); facing / inside say why
        local = self.local_branch(jnp.concatenate([*(s * inside for s in sampled), colour, facing, inside], -1))
        t = self.texel_embed.shape[0]
        embed = jnp.broadcast_to(self.texel_embed[...], (b, t, self.texel_embed.shape[-1]))
        glob = self.global_branch(jnp.concatenate(
            [embed, jnp.broadcast_to(vector[:, None], (b, t, vector.shape[-1]))], -1))
        fused = jnp.concatenate([glob, local], -1)
        if self.mix is not None:
            fused = self.mix(fused)
        raw = scatter_texels(self.fuse(fused), self.texel_cell[...], r)
        colour_map = jnp.clip(scatter_texels(colour, self.texel_cell[...], r), COLOUR_CLIP, 1 - COLOUR_CLIP)
        out = compose_map(raw, colour_map, self.offset_scale, self.init_opacity_logit)
        chex.assert_shape(out, (b, r, r, MAP_CHANNELS))
        return out
