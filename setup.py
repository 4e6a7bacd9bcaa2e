"""Package discovery. `flashtalker_jax/kernels` and `flashtalker_jax/configs` are symlinks
to the top-level `kernels/` and `configs/` folders, so the checkout imports exactly what
the wheel installs (setuptools follows the links and copies the files).

Neither top-level folder has an `__init__.py`: a regular package named `kernels` or
`configs` on sys.path (the checkout, with `python -m pytest`) would shadow distributions
of that name (Hugging Face's `kernels`, which transformers imports). Without it they are
namespace portions that only resolve under `flashtalker_jax.`, and Python prefers any
regular package of the same top-level name elsewhere on sys.path.
"""
from setuptools import find_packages, setup

packages = find_packages(include=["flashtalker_jax", "flashtalker_jax.*"])
packages += ["flashtalker_jax.kernels", "flashtalker_jax.configs"]
packages += [f"flashtalker_jax.kernels.{name}" for name in find_packages("kernels")]

setup(
    packages=sorted(set(packages)),
    # bundled/motion_prior: the motion prior shipped with the package (pipeline/bundled.py);
    # bundled/procedural_embedding: the procedural head's calibrated MediaPipe embedding (track/bundled.py)
    package_data={"flashtalker_jax": ["data/synth/*.txt", "bundled/motion_prior/*.json",
                                      "bundled/motion_prior/*.npz", "bundled/motion_prior/*.npy",
                                      "bundled/motion_prior/norms/*.npz",
                                      "bundled/procedural_embedding/*.npz", "bundled/procedural_embedding/*.json"]},
)
