"""Package discovery: `kernels/` lives at the top level but installs as `flashtalker_jax.kernels`."""
from setuptools import find_packages, setup

packages = find_packages(include=["flashtalker_jax", "flashtalker_jax.*"])
packages += ["flashtalker_jax.kernels"] + [
    f"flashtalker_jax.kernels.{name}" for name in find_packages("kernels")
]

setup(
    packages=packages,
    package_dir={"flashtalker_jax.kernels": "kernels"},
    package_data={"flashtalker_jax": ["data/synth/*.txt"]},
)
