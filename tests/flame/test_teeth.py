"""GaussianAvatars teeth: counts, skinning (upper -> neck, lower -> jaw)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.flame import FlameParams, flame_forward, load_flame_model
from flashtalker_jax.flame.teeth import (FLAME2020_LIP_RING_LOWER, FLAME2020_LIP_RING_UPPER,
                                         add_teeth, lip_rings)


def test_teeth_follow_the_jaw(flame_dir, flame_model):
    model = load_flame_model(flame_dir, with_teeth=True).truncated(10, 10)
    assert model.n_vertices == flame_model.n_vertices + 120
    assert model.faces.shape[0] == flame_model.faces.shape[0] + 168
    upper, lower = np.asarray(model.teeth_upper), np.asarray(model.teeth_lower)
    assert upper.size == lower.size == 60
    params = FlameParams.zeros(2, 10, 10).replace(jaw_pose=jnp.array([[0.0] * 3, [0.3, 0, 0]]))
    verts = np.asarray(jax.jit(flame_forward)(model, params).vertices)
    moved = np.linalg.norm(verts[1] - verts[0], axis=-1)
    assert moved[lower].min() > 1e-3  # every lower-teeth vertex moves by more than 1 mm
    assert moved[upper].max() < 1e-7
    # lower teeth go down, and stay behind the lower lip ring they were built from
    assert np.all(verts[1, lower, 1] < verts[0, lower, 1])


def test_flame2020_topology_gets_5143_vertices_10144_faces(tmp_path):
    V, F = 5023, 9976
    rng = np.random.default_rng(0)
    arrays = {"v_template": rng.normal(size=(V, 3)) * 0.05,
              "f": rng.integers(0, V, size=(F, 3)), "shapedirs": np.zeros((V, 3, 302)),
              "posedirs": np.zeros((V, 3, 36)), "J_regressor": np.zeros((5, V)),
              "weights": np.zeros((V, 5)), "n_shape": 300}
    arrays["shapedirs"][:, :, 0] = 1.0
    rings = lip_rings(tmp_path, V)
    np.testing.assert_array_equal(rings[0], FLAME2020_LIP_RING_UPPER)
    out = add_teeth(arrays, *rings)
    assert out["v_template"].shape == (5143, 3) and out["f"].shape == (10144, 3)
    assert out["shapedirs"].shape == (5143, 3, 302)
    np.testing.assert_array_equal(out["shapedirs"][V:, :, 0], 1.0)  # copied lip shape
    np.testing.assert_array_equal(out["shapedirs"][V:, :, 300:], 0.0)  # no expressions
    w = out["weights"][V:]
    np.testing.assert_array_equal(w.sum(1), 1.0)
    assert set(np.nonzero(w[:, 1])[0] + V) == set(out["teeth_upper"])
    assert set(np.nonzero(w[:, 2])[0] + V) == set(out["teeth_lower"])
    assert len(FLAME2020_LIP_RING_LOWER) == 15


def test_teeth_uv_chart(flame_dir, flame_model):
    from flashtalker_jax.flame import load_uv_layout
    from flashtalker_jax.flame.teeth import TEETH_UV_BOX
    vt, ft = load_uv_layout(flame_dir, with_teeth=True)
    head_vt, head_ft = load_uv_layout(flame_dir)
    assert vt.shape[0] == head_vt.shape[0] + 120 and ft.shape[0] == head_ft.shape[0] + 168
    teeth = vt[head_vt.shape[0]:]
    u0, v0, u1, v1 = TEETH_UV_BOX
    assert np.all((teeth >= np.array([u0, v0]) - 1e-6) & (teeth <= np.array([u1, v1]) + 1e-6))
    assert np.all(head_vt[:, 1] < v0)  # the teeth box is free in the head's layout
    a, b, c = (vt[ft[head_ft.shape[0]:, k]] for k in range(3))
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    # 8 rows on 8 levels, 6 strips each spanning one of the 7 gaps between levels (the gap
    # between the two roots stays empty): areas add up to 6/7 of the box only if none overlap
    assert area.min() > 0
    np.testing.assert_allclose(area.sum(), 6 / 7 * (u1 - u0) * (v1 - v0), rtol=1e-4)
