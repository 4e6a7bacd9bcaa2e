"""Gaussian rendering: projection, SH colours, tile binning, compositing backends."""
from flashtalker_jax.render.rasterize import (BufferOverflowError, RenderOutput, rasterize,
                                              required_capacity, required_per_tile)

__all__ = ["BufferOverflowError", "RenderOutput", "rasterize", "required_capacity",
           "required_per_tile"]
