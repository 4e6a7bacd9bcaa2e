"""FLAME in pure-functional JAX: safe loader, forward pass, landmarks, teeth, procedural head.

Public API (kept stable): load_flame_model(path) -> FlameModel,
flame_forward(model, params: FlameParams) -> FlameOutput(vertices, joints, landmarks).
"""
from flashtalker_jax.flame.landmarks import mouth_opening, to_ibug68
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.model import FlameModel, FlameOutput, FlameParams

__all__ = ["FlameModel", "FlameOutput", "FlameParams", "flame_forward", "load_flame_model",
           "load_region_masks", "load_uv_layout", "mouth_opening", "to_ibug68"]
