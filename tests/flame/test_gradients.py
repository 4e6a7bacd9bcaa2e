"""Gradients of the posed vertices w.r.t. every parameter group: finite and equal to
central finite differences (float64; step 1e-6 gives FD error ~1e-9 relative, so 1e-5
relative tolerance separates a wrong derivative from FD noise)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.flame import FlameParams, flame_forward

GROUPS = ["shape", "expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation",
          "static_offset"]


def _params(model, rng, dtype):
    B = 2
    def r(*shape, scale=0.2):
        return jnp.asarray(rng.normal(size=shape) * scale, dtype)
    return FlameParams(shape=r(B, 8, scale=1.0), expr=r(B, 8, scale=1.0), rotation=r(B, 3),
                       neck_pose=r(B, 3), jaw_pose=r(B, 3), eyes_pose=r(B, 6),
                       translation=r(B, 3), static_offset=r(B, model.n_vertices, 3, scale=1e-3))


@pytest.mark.parametrize("at_zero_pose", [False, True])
def test_vertex_gradients_match_finite_differences(flame_model, at_zero_pose):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        model = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            flame_model.truncated(8, 8))
        params = _params(model, rng, jnp.float64)
        if at_zero_pose:  # rodrigues at 0 must stay finite (smplx's +1e-8)
            params = params.replace(rotation=jnp.zeros_like(params.rotation),
                                    jaw_pose=jnp.zeros_like(params.jaw_pose))
        weights = jnp.asarray(rng.normal(size=(2, model.n_vertices, 3)))

        def loss(p):
            return jnp.sum(flame_forward(model, p).vertices * weights)

        loss_jit = jax.jit(loss)
        grads = jax.jit(jax.grad(loss))(params)
        eps = 1e-6
        for name in GROUPS:
            g = getattr(grads, name)
            assert np.all(np.isfinite(np.asarray(g))), name
            direction = jnp.asarray(rng.normal(size=g.shape))
            base = getattr(params, name)
            plus = loss_jit(params.replace(**{name: base + eps * direction}))
            minus = loss_jit(params.replace(**{name: base - eps * direction}))
            fd = (plus - minus) / (2 * eps)
            analytic = jnp.sum(g * direction)
            np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-5, atol=1e-7,
                                       err_msg=name)
