"""FLAME in pure-functional JAX: safe loader, forward pass, landmarks, teeth, procedural head.

Public API (kept stable; external checks use it):

- `load_flame_model(path, *, with_teeth=False, dtype=jnp.float32, n_shape=None, n_expr=None)
  -> FlameModel`: path is a FLAME pickle (FLAME 2020 generic_model.pkl, flame2023.pkl,
  FLAME_NEUTRAL.pkl) or a folder holding flame/<that> or <that>. Pickles are read through an
  allow-list unpickler (numpy, scipy.sparse, chumpy arrays only; anything else is refused
  before it can run). Landmark embeddings are read from the same folder.
- `flame_forward(model, params) -> FlameOutput(vertices (B, V, 3), joints (B, 5, 3),
  landmarks (B, L, 3))`: jit/grad/vmap-safe; pass the model as a jit argument. Matches
  smplx 0.1.28 FLAME (tests/flame/test_parity_smplx.py).
- `FlameParams(shape, expr, rotation, neck_pose, jaw_pose, eyes_pose (B, 6), translation,
  static_offset=None)`, `FlameParams.zeros(batch, n_shape, n_expr, dtype)`.
- Landmarks: 51 static points (iBUG-68 minus the jaw contour), then 17 contour points when the
  model has a dynamic embedding (smplx order); `to_ibug68` reorders; `mouth_opening` is the
  distance between the inner-lip midpoints (iBUG 62 / 66 = static 45 / 49).
- `load_uv_layout(path, *, with_teeth=False) -> (vt, ft)`, `load_region_masks(path) -> dict`
  (FLAME_masks.pkl names plus upper_face / lower_face, derived when absent: face vertices
  above / below the horizontal plane through the nose tip).
- `procedural.write_procedural_flame(out_dir, seed=0)`, `procedural.procedural_model(seed)`,
  `procedural.EXPR_COMPONENTS`: the stand-in head (see procedural/__init__.py).

Conventions (FLAME's): metres, +y up, +z forward, +x the subject's left; joints 0 global,
1 neck, 2 jaw, 3 left eye, 4 right eye; axis-angle poses; jaw_pose[0] > 0 opens the mouth.
"""
from flashtalker_jax.flame.landmarks import mouth_opening, to_ibug68
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.model import FlameModel, FlameOutput, FlameParams

__all__ = ["FlameModel", "FlameOutput", "FlameParams", "flame_forward", "load_flame_model",
           "load_region_masks", "load_uv_layout", "mouth_opening", "to_ibug68"]
