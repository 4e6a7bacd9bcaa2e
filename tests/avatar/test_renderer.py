"""The inference renderer (avatar/renderer.py) loaded from an avatar folder renders exactly
what adaptation's training path (adapt.render_training_frames) renders for the same
frames, given the refined parameters and cameras that path used: one code path, the
refinement tables applied only in training. Bit-identical is expected (same arrays, same
program) but checked to 1e-6 so a different XLA fusion of the two jitted programs cannot
fail it. Also: FlameParams.from_track and the explicit audio conditioning."""
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.avatar import adapt
from flashtalker_jax.avatar.adapt_model import AdaptModel
from flashtalker_jax.avatar.frames import load_frames
from flashtalker_jax.avatar.renderer import RenderSettings, load_renderer, render
from flashtalker_jax.config import load_config
from flashtalker_jax.data.vhap import read_vhap
from flashtalker_jax.flame.model import FlameParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speak"))
AUDIO_DIM = 6


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """An avatar folder whose every parameter (refinement tables included) is moved off its
    initial value, as after adaptation, and the training model it was written from."""
    import tiny

    root = tmp_path_factory.mktemp("renderer")
    ident = tiny.make_identity(root)
    cfg = load_config("adapt_flashtalker", ["task.resolution=32", "task.placement.uv_resolution=16",
                                            "task.placement.teeth_per_face=1", f"task.data={ident}",
                                            "task.render.backend=reference"]).task
    audio = np.random.default_rng(0).normal(size=(2, AUDIO_DIM)).astype(np.float32)
    # Two cameras: centred camera corrections (task.refine_centered) are zero for a single one.
    spec = adapt.build_spec(cfg, adapt.resolve_flame_dir(cfg, ident), np.zeros(300, np.float32), None,
                            n_frames=2, n_cameras=2, audio=audio)
    model = adapt.make_model_factory(cfg, spec)(nnx.Rngs(0))
    keys = iter(jax.random.split(jax.random.key(1), 1000))
    nnx.update(model, jax.tree.map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape),
                                   nnx.state(model, nnx.Param)))
    folder = adapt.export_avatar(model, cfg, root / "avatar")
    batch = load_frames(read_vhap(ident), np.arange(2), 32, audio)
    batch = {k: jnp.asarray(v) for k, v in batch.items()} | {"refine": jnp.ones(2, bool)}
    return {"folder": folder, "model": model, "task_cfg": cfg, "batch": batch}


def test_inference_renderer_matches_the_training_path(adapted):
    renderer, task_cfg = load_renderer(adapted["folder"])
    assert not isinstance(renderer.model, AdaptModel)  # no refinement tables at inference
    assert renderer.model.audio_dim == AUDIO_DIM
    settings = RenderSettings.from_config(adapted["task_cfg"])
    assert renderer.settings == settings
    batch = adapted["batch"]
    trained, params, viewmat = jax.jit(adapt.render_training_frames, static_argnums=2)(
        adapted["model"], batch, settings)
    assert not np.allclose(viewmat, batch["viewmat"])  # the refinement did apply
    got = jax.jit(render)(renderer, params, viewmat, batch["K"], batch["audio"])
    assert np.asarray(got.rgb).std() > 0.01  # a head, not the background
    for name in ("rgb", "lip", "overflow"):
        np.testing.assert_allclose(getattr(got, name), getattr(trained, name), rtol=0, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(got.flame.vertices, trained.flame.vertices, rtol=0, atol=1e-6)


def test_audio_conditioning_is_explicit(adapted):
    renderer, _ = load_renderer(adapted["folder"])
    batch = adapted["batch"]
    params = FlameParams.from_track(batch, prefix="flame_")
    with pytest.raises(ValueError, match="takes 6 audio features"):
        render(renderer, params, batch["viewmat"], batch["K"])
    with pytest.raises(AssertionError):
        render(renderer, params, batch["viewmat"], batch["K"], batch["audio"][:, :3])


def test_flame_params_from_track():
    track = {"expr": jnp.ones((4, 10)), "jaw_pose": jnp.full((4, 3), 2.0), "audio": jnp.zeros((4, 7))}
    params = FlameParams.from_track(track, n_expr=6,
                                    neutral=("rotation", "neck_pose", "eyes_pose", "translation"))
    chex.assert_shape((params.shape, params.expr, params.eyes_pose, params.translation),
                      [(4, 0), (4, 6), (4, 6), (4, 3)])
    assert float(params.jaw_pose[0, 0]) == 2.0 and float(jnp.abs(params.rotation).sum()) == 0.0
    with pytest.raises(KeyError):  # not neutral, not in the track: never zero-filled silently
        FlameParams.from_track(track)
    bad = dict(track, rotation=jnp.zeros((4, 3)), neck_pose=jnp.zeros((4, 3)),
               eyes_pose=jnp.zeros((4, 3)), translation=jnp.zeros((4, 3)))
    with pytest.raises(AssertionError, match="eyes_pose"):
        FlameParams.from_track(bad)
