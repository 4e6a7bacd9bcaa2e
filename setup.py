"""Package discovery: the top-level `kernels/` and `configs/` install as
`flashtalker_jax.kernels` and `flashtalker_jax.configs`."""
from setuptools import find_packages, setup

packages = find_packages(include=["flashtalker_jax", "flashtalker_jax.*"])
packages += ["flashtalker_jax.kernels", "flashtalker_jax.configs"] + [
    f"flashtalker_jax.kernels.{name}" for name in find_packages("kernels")
]

setup(
    packages=packages,
    package_dir={"flashtalker_jax.kernels": "kernels", "flashtalker_jax.configs": "configs"},
    package_data={"flashtalker_jax": ["data/synth/*.txt"]},
)
