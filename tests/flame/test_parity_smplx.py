"""Parity with smplx 0.1.28 FLAME (torch, CPU) on the procedural head.

Tolerances: float32 1e-5 m (vertices are ~0.1 m; float32 eps 1.2e-7 times the few hundred
accumulated terms of the 400-column blendshape sum and the 4x4 chain stays near 1e-7..1e-6,
so 1e-5 leaves margin while catching any real error, which would be >= 1e-4 m);
float64 1e-8 m (smplx reads the model through float32 but the procedural arrays are
float32-exact, so both sides compute in float64 from identical numbers).
"""
from __future__ import annotations

import numpy as np
import pytest

import torch
import smplx

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from flashtalker_jax.flame import FlameParams, flame_forward  # noqa: E402

B = 6


def _random_batch(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    pose = rng.normal(size=(B, 5, 3)) * 0.25
    # global yaws spread over every contour bin, beyond the +-39 degree clamp included
    pose[:, 0, 1] = np.deg2rad(np.linspace(-55, 50, B))
    return {"shape": rng.normal(size=(B, 300)), "expr": rng.normal(size=(B, 100)),
            "pose": pose, "transl": rng.normal(size=(B, 3)) * 0.05}


def _smplx_outputs(folder, batch, dtype):
    model = smplx.create(str(folder.parent), model_type="flame", num_betas=300,
                         num_expression_coeffs=100, use_face_contour=True, batch_size=B,
                         dtype=dtype)
    t = {k: torch.tensor(v, dtype=dtype) for k, v in batch.items()}
    with torch.no_grad():
        out = model(betas=t["shape"], expression=t["expr"], global_orient=t["pose"][:, 0],
                    neck_pose=t["pose"][:, 1], jaw_pose=t["pose"][:, 2],
                    leye_pose=t["pose"][:, 3], reye_pose=t["pose"][:, 4], transl=t["transl"])
    joints = out.joints.numpy()
    return out.vertices.numpy(), joints[:, :5], joints[:, 5:]


def _jax_outputs(model, batch, dtype):
    # the procedural arrays are float32-exact, so casting the float32 model is the same as
    # loading the file in float64
    model = jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, model)
    params = FlameParams(
        shape=jnp.asarray(batch["shape"], dtype), expr=jnp.asarray(batch["expr"], dtype),
        rotation=jnp.asarray(batch["pose"][:, 0], dtype),
        neck_pose=jnp.asarray(batch["pose"][:, 1], dtype),
        jaw_pose=jnp.asarray(batch["pose"][:, 2], dtype),
        eyes_pose=jnp.asarray(batch["pose"][:, 3:].reshape(B, 6), dtype),
        translation=jnp.asarray(batch["transl"], dtype))
    out = jax.jit(flame_forward)(model, params)
    assert out.vertices.dtype == dtype
    return np.asarray(out.vertices), np.asarray(out.joints), np.asarray(out.landmarks)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_matches_smplx(flame_dir, flame_model, precision):
    batch = _random_batch(seed=1)
    tol = {"float32": 1e-5, "float64": 1e-8}[precision]
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[precision]
    with jax.enable_x64(precision == "float64"):
        verts, joints, lmks = _jax_outputs(flame_model, batch, getattr(jnp, precision))
    ref_verts, ref_joints, ref_lmks = _smplx_outputs(flame_dir, batch, torch_dtype)
    assert lmks.shape == ref_lmks.shape == (B, 68, 3)
    np.testing.assert_array_less(np.abs(verts - ref_verts).max(), tol)
    np.testing.assert_array_less(np.abs(joints - ref_joints).max(), tol)
    np.testing.assert_array_less(np.abs(lmks[:, :51] - ref_lmks[:, :51]).max(), tol)
    np.testing.assert_array_less(np.abs(lmks[:, 51:] - ref_lmks[:, 51:]).max(), tol)


def test_contour_follows_global_rotation_only(flame_model):
    """smplx NECK_IDX = 0: turning the neck moves the contour points with the mesh but does
    not change which yaw bin (faces, barycentrics) they come from."""
    from flashtalker_jax.flame.landmarks import vertices_to_landmarks, yaw_bin
    from flashtalker_jax.flame.lbs import batch_rodrigues
    model = flame_model.truncated(10, 10)

    @jax.jit
    def run(model, params):
        out = flame_forward(model, params)
        rest_bin = vertices_to_landmarks(out.vertices, model.faces, model.dynamic_lmk_faces_idx[0],
                                         model.dynamic_lmk_bary_coords[0])
        return out.landmarks[:, 51:], rest_bin, yaw_bin(batch_rodrigues(params.rotation))

    params = FlameParams.zeros(3, 10, 10)
    params = params.replace(neck_pose=params.neck_pose.at[1, 1].set(0.5),
                            rotation=params.rotation.at[2, 1].set(-0.3))
    contour, rest_bin, bins = run(model, params)
    np.testing.assert_array_equal(np.asarray(bins), [0, 0, 17])  # round(17.19 degrees) = 17
    np.testing.assert_allclose(contour[:2], rest_bin[:2], atol=1e-7)
