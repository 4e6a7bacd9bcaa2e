"""FLAME pytrees: the model arrays, the per-frame parameters and the forward output.

All three are registered dataclasses, so they pass through `jax.jit`, `jax.grad` and
`jax.vmap` as ordinary arguments. Model arrays are jit *arguments*, never closed-over
constants (closing over them makes XLA constant-fold the (V, 3, 400) basis).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

# Joint order of every FLAME release: 0 global (root), 1 neck, 2 jaw, 3 left eye, 4 right eye.
FLAME_PARENTS = (-1, 0, 1, 1, 1)

# The per-frame parameters of a track (VHAP, motion output, eval drivings) and their widths
# (None: the expression count, which the track decides).
FRAME_KEYS = {"expr": None, "rotation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6,
              "translation": 3}


@dataclasses.dataclass(frozen=True)
class FlameModel:
    """Arrays of one FLAME model (V vertices, F faces, J joints, L static landmarks).

    v_template (V, 3); shape_dirs (V, 3, n_shape); expr_dirs (V, 3, n_expr);
    posedirs (V, 3, 9 (J-1)); J_regressor (J, V); weights (V, J); faces (F, 3) int32;
    lmk_faces_idx (L,) int32; lmk_bary_coords (L, 3);
    dynamic_lmk_faces_idx (79, 17) int32 or None; dynamic_lmk_bary_coords (79, 17, 3) or None.
    `parents` is static (a tuple: the kinematic chain is unrolled at trace time).
    `teeth_upper` / `teeth_lower` hold the vertex ids of the GaussianAvatars teeth when
    the model was loaded with teeth (None otherwise).
    """

    v_template: jax.Array
    shape_dirs: jax.Array
    expr_dirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    weights: jax.Array
    faces: jax.Array
    lmk_faces_idx: jax.Array
    lmk_bary_coords: jax.Array
    dynamic_lmk_faces_idx: Optional[jax.Array] = None
    dynamic_lmk_bary_coords: Optional[jax.Array] = None
    teeth_upper: Optional[jax.Array] = None
    teeth_lower: Optional[jax.Array] = None
    parents: tuple = FLAME_PARENTS

    @property
    def n_shape(self) -> int:
        return self.shape_dirs.shape[-1]

    @property
    def n_expr(self) -> int:
        return self.expr_dirs.shape[-1]

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def dtype(self):
        return self.v_template.dtype

    def truncated(self, n_shape: int | None = None, n_expr: int | None = None) -> "FlameModel":
        """The same model keeping only the first n_shape / n_expr components."""
        return dataclasses.replace(
            self,
            shape_dirs=self.shape_dirs[..., : self.n_shape if n_shape is None else n_shape],
            expr_dirs=self.expr_dirs[..., : self.n_expr if n_expr is None else n_expr])


@dataclasses.dataclass(frozen=True)
class FlameParams:
    """Per-frame FLAME parameters; the leading axis B is frames.

    shape (B, S), expr (B, E), rotation / neck_pose / jaw_pose (B, 3) axis-angle,
    eyes_pose (B, 6) = left eye then right eye axis-angle, translation (B, 3),
    static_offset (B, V, 3) or (V, 3) or None: per-vertex offset added to the shaped
    template before joints are regressed (the VHAP / GaussianAvatars convention).
    S and E may be smaller than the model's component counts: the first S / E are used.
    """

    shape: jax.Array
    expr: jax.Array
    rotation: jax.Array
    neck_pose: jax.Array
    jaw_pose: jax.Array
    eyes_pose: jax.Array
    translation: jax.Array
    static_offset: Optional[jax.Array] = None

    @staticmethod
    def zeros(batch: int, n_shape: int = 300, n_expr: int = 100, dtype=jnp.float32) -> "FlameParams":
        def z(*shape):
            return jnp.zeros(shape, dtype)
        return FlameParams(shape=z(batch, n_shape), expr=z(batch, n_expr), rotation=z(batch, 3),
                           neck_pose=z(batch, 3), jaw_pose=z(batch, 3), eyes_pose=z(batch, 6),
                           translation=z(batch, 3))

    @classmethod
    def from_track(cls, track: Mapping[str, jax.Array], *, prefix: str = "",
                   n_expr: int | None = None, neutral: tuple[str, ...] = ()) -> "FlameParams":
        """FlameParams of B frames from per-frame arrays track[prefix + key] (B, k) for
        FRAME_KEYS (the rest of the track is ignored). Keys in `neutral` are not read but
        zero-filled (the rest pose); expr is cut or zero-padded to n_expr columns when given. Shape
        has no components (B, 0): the identity's shape is baked into a personalised model."""
        present = [k for k in FRAME_KEYS if k not in neutral]
        b = track[prefix + present[0]].shape[0]
        fields = {}
        for key, width in FRAME_KEYS.items():
            if key in neutral:
                fields[key] = jnp.zeros((b, width or n_expr or 0), jnp.float32)
                continue
            value = track[prefix + key]
            chex.assert_shape(value, (b, width), custom_message=f"track {prefix + key}")
            fields[key] = value
        if n_expr is not None:  # a track with fewer components: the rest are zero (not fitted)
            expr = fields["expr"][:, :n_expr]
            fields["expr"] = jnp.pad(expr, ((0, 0), (0, n_expr - expr.shape[1])))
        return cls(shape=jnp.zeros((b, 0)), **fields)

    @property
    def batch(self) -> int:
        return self.rotation.shape[0]

    def replace(self, **changes) -> "FlameParams":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class FlameOutput:
    """vertices (B, V, 3), joints (B, J, 3) posed and translated, landmarks (B, L, 3).

    landmarks = the 51 static points (iBUG-68 order without the 17 contour points),
    followed by the 17 yaw-dependent contour points when the model has a dynamic
    embedding (smplx's order). `to_ibug68` reorders them into the 68-point layout.
    """

    vertices: jax.Array
    joints: jax.Array
    landmarks: jax.Array


_MODEL_DATA = [f.name for f in dataclasses.fields(FlameModel) if f.name != "parents"]
jax.tree_util.register_dataclass(FlameModel, data_fields=_MODEL_DATA, meta_fields=["parents"])
jax.tree_util.register_dataclass(
    FlameParams, data_fields=[f.name for f in dataclasses.fields(FlameParams)], meta_fields=[])
jax.tree_util.register_dataclass(
    FlameOutput, data_fields=["vertices", "joints", "landmarks"], meta_fields=[])


def model_from_arrays(arrays: dict, dtype=jnp.float32) -> FlameModel:
    """A FlameModel from validated numpy arrays (see loader.validate_flame_arrays)."""
    n_shape = arrays["n_shape"]
    shapedirs = np.asarray(arrays["shapedirs"])

    def f(x):
        return None if x is None else jnp.asarray(np.asarray(x), dtype=dtype)

    def i(x):
        return None if x is None else jnp.asarray(np.asarray(x), dtype=jnp.int32)

    parents = tuple(int(p) for p in np.asarray(arrays["kintree_table"])[0])
    return FlameModel(
        v_template=f(arrays["v_template"]), shape_dirs=f(shapedirs[..., :n_shape]),
        expr_dirs=f(shapedirs[..., n_shape:]), posedirs=f(arrays["posedirs"]),
        J_regressor=f(arrays["J_regressor"]), weights=f(arrays["weights"]), faces=i(arrays["f"]),
        lmk_faces_idx=i(arrays["lmk_faces_idx"]), lmk_bary_coords=f(arrays["lmk_bary_coords"]),
        dynamic_lmk_faces_idx=i(arrays.get("dynamic_lmk_faces_idx")),
        dynamic_lmk_bary_coords=f(arrays.get("dynamic_lmk_bary_coords")),
        teeth_upper=i(arrays.get("teeth_upper")), teeth_lower=i(arrays.get("teeth_lower")),
        parents=(-1,) + parents[1:])
