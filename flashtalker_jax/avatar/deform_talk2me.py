"""Talk2Me's region-weighted Gaussian deformation (Sec. 4.2.1-4.2.2), HHAvatar's form:
the second deformer beside FlashTalker's cross-region attention (deform.py), chosen by
`task.avatar.deformer = "region_weighted"` (configs/adapt_talk2me.py).

Every Gaussian i has a neutral position x_i: the barycentric point of its triangle on the
neutral (personalised, unposed) template, taken from the binding at call time, so
per-face densification (which rewrites face ids and barycentrics) keeps it right. Its
distance d_i to the nearest neutral FLAME landmark (the 51 static points, iBUG-68 without
the yaw-dependent jaw contour, which would pull the ears in) gives Eq. 2's weights
  w_exp = clamp((d_far - d) / (d_far - d_near), 0, 1),   w_pose = 1 - w_exp.
Primitive features (Eq. 5-7, the learnable positional encoding "LPE"):
  z_i = PC(x_i) + sigmoid(a) L(i) + (1 - sigmoid(a)) S(i),
  S(i) = [sin(i (gamma * f) + phi), cos(i (gamma * f) + phi)],
PC a linear map of x (centred on the landmarks' centroid, divided by their RMS radius),
L the avatar's per-Gaussian `features` table (trained with its own learning-rate group),
f fixed geometric bands f_k = base^(-k/K) (the transformer's), gamma (per band, starts at
1) and phi (starts at 0) learnable, and one learnable blend logit a (starts at 0: half and
half).
Without LPE (`lpe=False`) z_i = Linear(NeRF encoding of x_i: x, sin(2^k pi x),
cos(2^k pi x), k < coord_frequencies), the traditional sinusoidal encoding of position,
and the features table is not read.
phi_D (Eq. 3) is two branches: expression (z, the template attributes mu, s, q, c, alpha,
expression e, jaw and eye rotations, eye-aspect ratios beta) and pose (z, the template
attributes, head pose p = global rotation + neck). Each first layer is split into a
per-Gaussian term (N, h) and a per-frame term (B, h) added by broadcasting, so no (B, N,
.) input is ever concatenated; each last layer starts at zero, so an untrained deformer
leaves the template unchanged (as Deformer does). Offsets = offset_scale (w_exp * exp +
w_pose * pose) with deform.OFFSET_SPLITS's layout; with `region_weights=False` both
weights are 1 everywhere. The colour offset is phi_D's c'; there is no separate colour
MLP, so the colour correction is zero. The template attributes enter as conditioning
only (stop_gradient): they are trained through their own path with their own learning
rates, which a second gradient path through the network would bypass.
beta (B, 2) = each eye's aspect ratio (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|) over the
posed FLAME eye landmarks (iBUG 36-41 and 42-47), computed where the drive is made
(avatar.drive_from_flame), so training, eval and speak all get it.
Talk2Me's adversarial loss (Eq. 10's L_a) is not implemented.
"""
from __future__ import annotations

from typing import Mapping

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from flashtalker_jax.avatar.deform import MLP, OFFSET_SPLITS, TemplateView
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.flame.landmarks import N_CONTOUR, N_STATIC

# iBUG-68 eyes (36-41 and 42-47, each p1..p6 clockwise from the outer/inner corner) in
# FLAME's static landmark layout (index k - N_CONTOUR).
EYES = (tuple(range(36 - N_CONTOUR, 42 - N_CONTOUR)), tuple(range(42 - N_CONTOUR, 48 - N_CONTOUR)))
# The template attributes phi_D reads, in this order: mu (3), s (3), q (4), c (3), alpha (1).
ATTRIBUTES = ("local_means", "local_log_scales", "local_quats", "color_logits", "opacity_logits")
N_ATTRIBUTES = 14


class NeutralGeometry(nnx.Variable):
    """Fixed neutral template vertices and landmarks (saved with the avatar)."""


def eye_aspect_ratio(landmarks: Float[Array, "B L 3"]) -> Float[Array, "B 2"]:
    """Each eye's aspect ratio (module docstring) from FLAME landmarks (B, L >= 51, 3)."""
    if landmarks.shape[-2] < N_STATIC:
        raise ValueError(f"eye aspect ratio needs the {N_STATIC} static FLAME landmarks, got "
                         f"{landmarks.shape[-2]} (the FLAME folder has no landmark embedding)")
    out = []
    for eye in EYES:
        p = landmarks[:, list(eye)]  # (B, 6, 3): p1..p6
        dist = lambda a, b: jnp.linalg.norm(p[:, a] - p[:, b], axis=-1)  # noqa: E731
        out.append((dist(1, 5) + dist(2, 4)) / (2.0 * dist(0, 3)))
    return jnp.stack(out, -1)


def expression_weights(d: Float[Array, "N"], d_near: float, d_far: float) -> Float[Array, "N"]:
    """Eq. 2: w_exp from the distance to the nearest neutral landmark."""
    return jnp.clip((d_far - d) / (d_far - d_near), 0.0, 1.0)


def neutral_positions(template: Float[Array, "V 3"], faces: Int[Array, "F 3"], face_ids: Int[Array, "N"],
                      barycentrics: Float[Array, "N 3"]) -> Float[Array, "N 3"]:
    """x_i: the barycentric point of each Gaussian's triangle on the neutral template."""
    return jnp.einsum("nkc,nk->nc", template[faces[face_ids]], barycentrics)


def nearest_distance(points: Float[Array, "N 3"], landmarks: Float[Array, "L 3"]) -> Float[Array, "N"]:
    """Distance from each point to its nearest landmark (all pairs: L is 51)."""
    return jnp.sqrt(jnp.min(jnp.sum((points[:, None] - landmarks[None]) ** 2, -1), -1))


def index_sinusoids(n: int, bands: Float[Array, "K"], gamma: Float[Array, "K"],
                    phi: Float[Array, "K"]) -> Float[Array, "n 2K"]:
    """Eq. 5: S(i) for i = 0..n-1."""
    angle = jnp.arange(n, dtype=jnp.float32)[:, None] * (gamma * bands)[None] + phi[None]
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], -1)


def coordinate_sinusoids(x: Float[Array, "N 3"], frequencies: int) -> Float[Array, "N D"]:
    """NeRF's positional encoding: x, then sin and cos of 2^k pi x for k < frequencies."""
    angle = x[:, None, :] * (np.pi * 2.0 ** np.arange(frequencies))[None, :, None]  # (N, k, 3)
    return jnp.concatenate([x, jnp.sin(angle).reshape(x.shape[0], -1),
                            jnp.cos(angle).reshape(x.shape[0], -1)], -1)


class LearnablePositionalEncoding(nnx.Module):
    """z = PC(x) + sigmoid(a) L(i) + (1 - sigmoid(a)) S(i) (Eq. 5-7)."""

    def __init__(self, dim: int, base: float, rngs: nnx.Rngs):
        if dim % 2:
            raise ConfigError(f"task.avatar.feature_dim={dim}: the index sinusoids need an even size")
        k = dim // 2
        self.bands = NeutralGeometry(jnp.asarray(base ** (-np.arange(k) / k), jnp.float32))
        self.gamma = nnx.Param(jnp.ones((k,)))
        self.phi = nnx.Param(jnp.zeros((k,)))
        self.blend = nnx.Param(jnp.zeros(()))
        self.coords = nnx.Linear(3, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "N 3"], table: Float[Array, "N d"]) -> Float[Array, "N d"]:
        s = index_sinusoids(x.shape[0], self.bands[...], self.gamma[...], self.phi[...])
        a = jax.nn.sigmoid(self.blend[...])
        return self.coords(x) + a * table + (1.0 - a) * s


class CoordinateEncoding(nnx.Module):
    """The no-LPE ablation: z = Linear(NeRF encoding of x)."""

    def __init__(self, dim: int, frequencies: int, rngs: nnx.Rngs):
        self.frequencies = int(frequencies)
        self.proj = nnx.Linear(3 + 6 * self.frequencies, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "N 3"], table: Float[Array, "N d"]) -> Float[Array, "N d"]:
        del table  # no learnable table without LPE
        return self.proj(coordinate_sinusoids(x, self.frequencies))


class Branch(nnx.Module):
    """One branch of phi_D: per-Gaussian (N, g) and per-frame (B, k) inputs -> (B, N, out),
    the first layer split so the two terms are added by broadcasting; `layers` hidden GELU
    layers, that one included (as many as deform.Deformer's offset MLP has)."""

    def __init__(self, gaussian_in: int, frame_in: int, hidden: int, layers: int, out: int,
                 rngs: nnx.Rngs):
        self.gaussian = nnx.Linear(gaussian_in, hidden, rngs=rngs)
        self.frame = nnx.Linear(frame_in, hidden, use_bias=False, rngs=rngs)
        self.rest = MLP((hidden,) * max(layers, 1) + (out,), rngs)

    def __call__(self, per_gaussian: Float[Array, "N g"], per_frame: Float[Array, "B k"]
                 ) -> Float[Array, "B N out"]:
        h = self.gaussian(per_gaussian)[None] + self.frame(per_frame)[:, None]
        return self.rest(jax.nn.gelu(h))


class RegionWeightedDeformer(nnx.Module):
    """(TemplateView: features table, template attributes, binding, faces; drive) -> offsets
    {name: (B, N, k)} and a zero colour-logit correction (B, N, 3): the same contract as
    deform.Deformer (module docstring)."""

    def __init__(self, *, n_expr: int, dim: int, hidden: int, layers: int, offset_scale: float,
                 template: np.ndarray, landmarks: np.ndarray, d_near: float, d_far: float,
                 lpe: bool, region_weights: bool, ear: bool, index_base: float,
                 coord_frequencies: int, rngs: nnx.Rngs):
        landmarks = np.asarray(landmarks, np.float32)
        if landmarks.ndim != 2 or landmarks.shape[0] < 1 or landmarks.shape[1] != 3:
            raise ValueError(f"region weights need the neutral FLAME landmarks (L, 3), got "
                             f"{landmarks.shape} (the FLAME folder has no landmark embedding)")
        if not 0.0 <= d_near < d_far:
            raise ConfigError(f"task.avatar.talk2me: need 0 <= d_near < d_far, got d_near={d_near}, "
                             f"d_far={d_far}")
        self.offset_scale = float(offset_scale)
        self.d_near, self.d_far = float(d_near), float(d_far)
        self.region_weights, self.ear = bool(region_weights), bool(ear)
        self.template_vertices = NeutralGeometry(jnp.asarray(template, jnp.float32))
        self.landmarks = NeutralGeometry(jnp.asarray(landmarks))
        self.encoding = (LearnablePositionalEncoding(dim, index_base, rngs) if lpe
                         else CoordinateEncoding(dim, coord_frequencies, rngs))
        n_out = sum(OFFSET_SPLITS.values())
        exp_in = n_expr + 3 + 6 + (2 if ear else 0)
        self.expression = Branch(dim + N_ATTRIBUTES, exp_in, hidden, layers, n_out, rngs)
        self.pose = Branch(dim + N_ATTRIBUTES, 6, hidden, layers, n_out, rngs)

    def weights(self, face_ids: Int[Array, "N"], barycentrics: Float[Array, "N 3"],
                faces: Int[Array, "F 3"]) -> tuple[Float[Array, "N 3"], Float[Array, "N"]]:
        """(normalised neutral positions (N, 3), w_exp (N,)) of the current binding."""
        x = neutral_positions(self.template_vertices[...], faces, face_ids, barycentrics)
        lm = self.landmarks[...]
        centre = jnp.mean(lm, 0)
        radius = jnp.sqrt(jnp.mean(jnp.sum((lm - centre) ** 2, -1)))
        if self.region_weights:
            w_exp = expression_weights(nearest_distance(x, lm), self.d_near, self.d_far)
        else:
            w_exp = jnp.ones(x.shape[0], x.dtype)
        return (x - centre) / radius, w_exp

    def __call__(self, template: TemplateView, drive: Mapping[str, Array]
                 ) -> tuple[dict[str, Array], Float[Array, "B N 3"]]:
        n = template.features.shape[0]
        chex.assert_shape(template.attributes, (n, N_ATTRIBUTES))
        x, w_exp = self.weights(template.face_ids, template.barycentrics, template.faces)
        z = self.encoding(x, template.features)
        per_gaussian = jnp.concatenate([z, jax.lax.stop_gradient(template.attributes)], -1)
        exp_frame = [drive["expr"], drive["jaw_pose"], drive["eyes_pose"]]
        if self.ear:
            if "ear" not in drive:
                raise ValueError("the region-weighted deformer with ear=True needs drive['ear'] "
                                 "(avatar.drive_from_flame(params, landmarks=...))")
            exp_frame.append(drive["ear"])
        exp = self.expression(per_gaussian, jnp.concatenate(exp_frame, -1))
        pose = self.pose(per_gaussian, jnp.concatenate([drive["rotation"], drive["neck_pose"]], -1))
        w_exp = w_exp[None, :, None]
        w_pose = 1.0 if not self.region_weights else 1.0 - w_exp
        raw = self.offset_scale * (w_exp * exp + w_pose * pose)
        bounds = np.cumsum(list(OFFSET_SPLITS.values()))[:-1]
        offsets = dict(zip(OFFSET_SPLITS, jnp.split(raw, bounds, axis=-1)))
        return offsets, jnp.zeros(raw.shape[:2] + (3,), raw.dtype)
