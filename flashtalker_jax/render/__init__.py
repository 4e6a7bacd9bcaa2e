"""Gaussian rendering: projection, SH colours, tile binning, compositing backends."""
from flashtalker_jax.render.rasterize import (BufferOverflowError, RenderOutput, rasterize,
                                              required_capacity)

__all__ = ["BufferOverflowError", "RenderOutput", "rasterize", "required_capacity"]
