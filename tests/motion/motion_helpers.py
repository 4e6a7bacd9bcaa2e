"""Constants and a tiny FLAME-like model shared by the motion tests (imported by name:
tests/motion/conftest.py puts this folder on sys.path)."""
import jax
import numpy as np
from flax import nnx

from flashtalker_jax.flame.model import FlameModel

MOTION_DIM = 7   # 4 expression coefficients + 3 jaw pose
AUDIO_DIM = 5


def random_flame(num_vertices=30, n_shape=3, n_expr=4, seed=0) -> FlameModel:
    """A small random model with FLAME's structure (5 joints; jaw skins half the vertices)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(num_vertices, 3)) * 0.05
    weights = np.zeros((num_vertices, 5))
    weights[:, 1] = 1.0
    weights[num_vertices // 2:, 1] = 0.3
    weights[num_vertices // 2:, 2] = 0.7
    regressor = np.abs(rng.normal(size=(5, num_vertices)))
    f32 = lambda x: np.asarray(x, np.float32)
    return FlameModel(
        v_template=f32(v), shape_dirs=f32(rng.normal(size=(num_vertices, 3, n_shape)) * 1e-3),
        expr_dirs=f32(rng.normal(size=(num_vertices, 3, n_expr)) * 1e-3),
        posedirs=f32(rng.normal(size=(num_vertices, 3, 36)) * 1e-4),
        J_regressor=f32(regressor / regressor.sum(1, keepdims=True)), weights=f32(weights),
        faces=np.array([[0, 1, 2]], np.int32), lmk_faces_idx=np.zeros((0,), np.int32),
        lmk_bary_coords=np.zeros((0, 3), np.float32))


def assert_init_deterministic(model_cls, dims) -> None:
    """model_cls(dims, rngs) initialises the same parameters from the same key and other
    ones from another key."""
    init = jax.jit(lambda key: nnx.state(model_cls(dims, nnx.Rngs(key)), nnx.Param))
    a, b, other = (jax.tree.leaves(init(jax.random.key(k))) for k in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, other))
