"""FrameRefinement (adapt_model.py), against numpy references: corrections are the stored
tables times lr_scale added to the tracked parameters and composed on the camera side;
centred, each table minus its mean over rows, so the corrections of all frames average to
zero and a single camera's correction is the identity whatever its table holds; the
gradient reaches only the batch's rows, as uncentred (d delta_i / d raw_j = 1[i=j] *
lr_scale: the mean is a projection, see FrameRefinement.delta); the frozen stage passes no
gradient. Float32 on values of order 1: 1e-6."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.avatar.adapt_model import REFINED_KEYS, FrameRefinement
from flashtalker_jax.flame.model import FlameParams

N_FRAMES, N_EXPR, SCALE = 5, 4, 0.1


def filled(centered: bool, n_cameras: int = 1) -> FrameRefinement:
    refinement = FrameRefinement(N_FRAMES, n_cameras, N_EXPR, SCALE, centered)
    rng = np.random.default_rng(0)
    for key in [*REFINED_KEYS, "camera"]:
        table = getattr(refinement, key)
        table[...] = jnp.asarray(rng.normal(size=table[...].shape), jnp.float32)
    return refinement


def tracked(rows: int) -> FlameParams:
    rng = np.random.default_rng(1)
    batch = {f"flame_{key}": rng.normal(size=(rows, size or N_EXPR)).astype(np.float32)
             for key, size in REFINED_KEYS.items()}
    return FlameParams.from_track(batch, prefix="flame_", n_expr=N_EXPR)


@pytest.mark.parametrize("centered", [False, True])
def test_corrections_match_the_numpy_reference(centered):
    refinement = filled(centered)
    frames = jnp.array([3, 0, 3])
    params = tracked(3)
    out = refinement.apply(params, frames, jnp.ones(3, bool))
    for key in REFINED_KEYS:
        table = np.asarray(getattr(refinement, key)[...], np.float64)
        if centered:
            table = table - table.mean(0)
        expected = np.asarray(getattr(params, key)) + table[np.asarray(frames)] * SCALE
        np.testing.assert_allclose(np.asarray(getattr(out, key)), expected, atol=1e-6, err_msg=key)


def test_centred_corrections_average_to_zero_over_all_frames():
    refinement = filled(True)
    params = tracked(N_FRAMES)
    out = refinement.apply(params, jnp.arange(N_FRAMES), jnp.ones(N_FRAMES, bool))
    for key in REFINED_KEYS:
        mean = np.mean(np.asarray(getattr(out, key)) - np.asarray(getattr(params, key)), axis=0)
        np.testing.assert_allclose(mean, 0.0, atol=1e-6, err_msg=key)
        assert not np.allclose(getattr(out, key), getattr(params, key))   # corrections did apply


def test_a_single_centred_camera_is_not_corrected_but_several_are():
    viewmat = jnp.asarray(np.eye(4, dtype=np.float32)[None].repeat(2, 0)).at[:, 2, 3].set(2.0)
    single = filled(True, n_cameras=1).viewmat(viewmat, jnp.zeros(2, int), jnp.ones(2, bool))
    np.testing.assert_array_equal(np.asarray(single), np.asarray(viewmat))
    several = filled(True, n_cameras=3).viewmat(viewmat, jnp.array([0, 2]), jnp.ones(2, bool))
    assert np.abs(np.asarray(several) - np.asarray(viewmat)).max() > 1e-2


@pytest.mark.parametrize("centered", [False, True])
def test_gradient_reaches_only_the_batch_rows_and_none_when_frozen(centered):
    refinement = filled(centered)
    frames, params = jnp.array([2]), tracked(1)

    def expr_sum(model, refine):
        return jnp.sum(model.apply(params, frames, refine).expr)

    grad = np.asarray(nnx.grad(expr_sum)(refinement, jnp.ones(1, bool))["expr"][...])
    expected = np.zeros((N_FRAMES, N_EXPR))
    expected[2] = SCALE
    np.testing.assert_allclose(grad, expected, atol=1e-6)
    frozen = np.asarray(nnx.grad(expr_sum)(refinement, jnp.zeros(1, bool))["expr"][...])
    np.testing.assert_array_equal(frozen, 0.0)
