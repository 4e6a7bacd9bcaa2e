"""Pallas kernels, installed as `flashtalker_jax.kernels`, each beside its pure-JAX reference."""
