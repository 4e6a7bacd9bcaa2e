"""Pallas kernels, installed as `flashtalker_jax.kernels`, each beside its pure-JAX reference.

Kernel tests live in `kernels/<kernel>/tests/` folders WITHOUT `__init__.py`: inside a
package, pytest would put the repository root on sys.path, and `flashtalker_jax` would
then import from the source tree, where `flashtalker_jax.kernels` does not exist (it is
mapped from this folder only by the installed package).
"""
