"""flashtalker-jax: audio-driven 3D Gaussian talking heads on FLAME, in JAX."""

__version__ = "0.1.0"
