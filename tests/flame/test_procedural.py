"""The procedural FLAME-format head: file format, semantics of joints and expressions,
UV chart without overlaps, determinism."""
from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from flashtalker_jax.flame import (FlameParams, flame_forward, load_region_masks, load_uv_layout,
                                   mouth_opening, to_ibug68)
from flashtalker_jax.flame.procedural import EXPR_COMPONENTS

FILES = ["generic_model.pkl", "FLAME_NEUTRAL.pkl", "flame_static_embedding.pkl",
         "flame_dynamic_embedding.npy", "FLAME_texture.npz", "FLAME_masks.pkl"]
# static (51-point) indices: iBUG-68 index - 17
RIGHT_EYE_UPPER, RIGHT_EYE_LOWER = [37 - 17, 38 - 17], [41 - 17, 40 - 17]
LEFT_EYE_UPPER, LEFT_EYE_LOWER = [43 - 17, 44 - 17], [47 - 17, 46 - 17]
MOUTH_CORNERS = [48 - 17, 54 - 17]
BROWS = list(range(0, 10))


def test_files_have_the_flame_format(flame_dir):
    assert sorted(p.name for p in flame_dir.iterdir()) == sorted(FILES)
    with open(flame_dir / "generic_model.pkl", "rb") as fh:
        model = pickle.load(fh, encoding="latin1")
    V = model["v_template"].shape[0]
    assert 3000 < V < 8000
    assert model["shapedirs"].shape == (V, 3, 400) and model["posedirs"].shape == (V, 3, 36)
    assert scipy.sparse.issparse(model["J_regressor"]) and model["J_regressor"].shape == (5, V)
    assert model["weights"].shape == (V, 5) and model["kintree_table"].shape == (2, 5)
    np.testing.assert_allclose(model["weights"].sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model["J_regressor"].sum(1)).ravel(), 1.0, atol=1e-6)
    assert (flame_dir / "FLAME_NEUTRAL.pkl").read_bytes() == (flame_dir / "generic_model.pkl").read_bytes()
    dyn = np.load(flame_dir / "flame_dynamic_embedding.npy", allow_pickle=True)[()]
    assert dyn["lmk_face_idx"].shape == (79, 17) and dyn["lmk_b_coords"].shape == (79, 17, 3)
    with open(flame_dir / "FLAME_masks.pkl", "rb") as fh:
        masks = pickle.load(fh)
    eyeballs = np.concatenate([masks["left_eyeball"], masks["right_eyeball"]])
    # head first, then the two eyeballs (FLAME's vertex order)
    np.testing.assert_array_equal(np.sort(eyeballs), np.arange(V - eyeballs.size, V))
    assert np.all(model["weights"][masks["left_eyeball"], 3] == 1)
    assert np.all(model["weights"][masks["right_eyeball"], 4] == 1)
    assert model["v_template"][masks["left_eyeball"], 0].min() > 0  # left = +x


def _forward(model, **groups):
    params = FlameParams.zeros(len(next(iter(groups.values()))), model.n_shape, model.n_expr)
    params = params.replace(**{k: jnp.asarray(v, jnp.float32) for k, v in groups.items()})
    return jax.jit(flame_forward)(model, params)


def _expr(name, value=1.0, n=100):
    e = np.zeros(n)
    e[EXPR_COMPONENTS[name]] = value
    return e


def test_lips_part_when_the_jaw_opens(flame_model):
    jaw = np.zeros((4, 3))
    jaw[:, 0] = [0.0, 0.05, 0.15, 0.3]
    opening = np.asarray(mouth_opening(_forward(flame_model, jaw_pose=jaw).landmarks))
    assert opening[0] < 1e-4  # closed mouth at rest
    assert np.all(np.diff(opening) > 1e-3) and opening[-1] > 0.015


def test_mouth_opening_uses_ibug_inner_lip_midpoints(flame_model):
    """mouth_opening reads static points 45 / 49, i.e. iBUG-68 points 62 / 66 (inner lip,
    upper / lower middle) once the 17 contour points are put first."""
    jaw = np.array([[0.2, 0.0, 0.0]])
    lm = _forward(flame_model, jaw_pose=jaw).landmarks
    ibug = np.asarray(to_ibug68(lm))
    expected = np.linalg.norm(ibug[:, 62] - ibug[:, 66], axis=-1)
    np.testing.assert_allclose(mouth_opening(lm), expected, rtol=1e-6)
    # 62 is on the upper lip, 66 on the lower, both on the face's midline
    assert ibug[0, 62, 1] > ibug[0, 66, 1] and abs(ibug[0, 62, 0]) < 1e-4


def test_named_expressions(flame_model):
    names = ["mouth_open", "smile", "eye_close", "brow_raise", "pucker"]
    expr = np.stack([np.zeros(100)] + [_expr(n) for n in names])
    out = _forward(flame_model, expr=expr)
    lm = np.asarray(out.landmarks)
    rest, mouth, smile, closed, brow, pucker = lm
    assert mouth_opening(lm[1:2])[0] > 0.006
    assert np.all(smile[MOUTH_CORNERS, 1] > rest[MOUTH_CORNERS, 1] + 0.002)
    for upper, lower in ((RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), (LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        assert np.all(np.linalg.norm(rest[upper] - rest[lower], axis=-1) > 0.006)  # open
        assert np.all(np.linalg.norm(closed[upper] - closed[lower], axis=-1) < 1e-4)  # closed
    assert np.all(brow[BROWS, 1] > rest[BROWS, 1] + 0.003)  # 3 mm or more
    lips = np.arange(31, 51)
    assert pucker[lips, 2].mean() > rest[lips, 2].mean() + 0.003
    eyeballs = np.asarray(out.vertices)[:, -1:]
    np.testing.assert_allclose(eyeballs, eyeballs[:1].repeat(6, 0), atol=1e-7)


def test_eyes_rotate_the_eyeballs_only(flame_dir, flame_model):
    """A sideways glance (rotation about y) turns the eyeballs about their centres and moves
    nothing else (the lid correctives respond to looking up or down only)."""
    masks = load_region_masks(flame_dir)
    eyeballs = np.concatenate([masks["left_eyeball"], masks["right_eyeball"]])
    eyes = np.zeros((2, 6))
    eyes[1] = [0.0, 0.3, 0.0, 0.0, 0.3, 0.0]
    out = _forward(flame_model, eyes_pose=eyes)
    moved = np.linalg.norm(np.asarray(out.vertices[1] - out.vertices[0]), axis=-1)
    assert moved[eyeballs].mean() > 2e-3
    assert np.delete(moved, eyeballs).max() < 1e-7
    np.testing.assert_allclose(out.joints[1], out.joints[0], atol=1e-7)


def _signed_areas(vt, ft):
    a, b, c = vt[ft[:, 0]], vt[ft[:, 1]], vt[ft[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def test_uv_chart_has_no_overlaps(flame_dir):
    """Every triangle keeps one orientation and each chart's triangles add up exactly to the
    area its boundary encloses: a fold or overlap would break one of the two."""
    vt, ft = load_uv_layout(flame_dir)
    vt = vt.astype(np.float64)
    area = _signed_areas(vt, ft)
    assert np.all(area > 0) or np.all(area < 0)
    with open(flame_dir / "FLAME_masks.pkl", "rb") as fh:
        masks = pickle.load(fh)
    boundary = masks["boundary"]
    ring = vt[boundary]
    order = np.argsort(np.arctan2(ring[:, 1] - vt[0, 1], ring[:, 0] - vt[0, 0]))
    x, y = ring[order, 0], ring[order, 1]
    enclosed = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    head_faces = np.all(ft < vt.shape[0] - masks["left_eyeball"].size * 2, axis=1)
    np.testing.assert_allclose(np.abs(area[head_faces]).sum(), enclosed, rtol=1e-6)


def test_generation_is_deterministic_per_seed():
    from flashtalker_jax.flame.procedural.basis import N_POSE, expression_basis
    from flashtalker_jax.flame.procedural.rest import build_rest_head
    head = build_rest_head()
    a = expression_basis(head, np.random.default_rng(0))
    b = expression_basis(head, np.random.default_rng(0))
    c = expression_basis(head, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    n_named = len(EXPR_COMPONENTS)
    np.testing.assert_array_equal(a[..., :n_named], c[..., :n_named])
    assert not np.allclose(a[..., n_named:], c[..., n_named:])
    assert N_POSE == 36
