"""`track --init encoder RUN` (encoder/track_init.py, track/fit.fit_clip(init=...)) on a
procedural identity whose landmarks are the truth: FLAME landmarks of the exact parameters
projected through the synthetic camera (an independent reference: flame_forward and the
pinhole model, not the tracker's rig or camera)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashtalker_jax.config import load_config
from flashtalker_jax.encoder.camera_code import to_camera_code
from flashtalker_jax.encoder.task import fit_width, frame_params
from flashtalker_jax.encoder.track_init import encoder_init_vars, tracker_vars
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.track import fit
from flashtalker_jax.track.bundled import bundled_embedding

N_FRAMES = 24


@pytest.fixture(scope="module")
def procedural_clip(tiny_dataset):
    """(model, rig, cfg, crop, target landmarks (T, L, 2), exact tracker vars, images)."""
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.flame.loader import find_model_file, load_flame_model

    seq = read_vhap(tiny_dataset / "identity_001")
    model = load_flame_model(find_model_file(tiny_dataset / "flame"))
    cfg = load_config("track")
    crop = seq.width
    track = {k: np.asarray(v[:N_FRAMES], np.float32) for k, v in seq.flame.items()}
    shape = fit_width(np.asarray(seq.shape, np.float32)[None], model.n_shape)[0]
    params = frame_params(model, shape, track)
    viewmat, K = jnp.asarray(seq.w2c[:N_FRAMES], jnp.float32), jnp.asarray(seq.K[:N_FRAMES], jnp.float32)
    emb = bundled_embedding(np.asarray(model.faces))
    rig = fit.make_rig(model, emb, cfg.flame.n_shape, cfg.flame.n_expr)
    # The embedding's points on the true posed mesh, seen by the synthetic camera.
    vertices = np.asarray(jax.jit(flame_forward)(model, params).vertices)
    corners = vertices[:, np.asarray(model.faces)[emb.lmk_face_idx]]            # (T, L, 3, 3)
    points = np.einsum("tlcx,lc->tlx", corners, np.asarray(emb.lmk_b_coords))
    cam = np.einsum("tij,tlj->tli", np.asarray(viewmat[:, :3, :3]), points) + np.asarray(viewmat[:, None, :3, 3])
    pix = np.einsum("tij,tlj->tli", np.asarray(K), cam)
    target = (pix[..., :2] / pix[..., 2:]).astype(np.float32)
    camera = to_camera_code(model, params, viewmat, K, crop)
    exact = tracker_vars(model, {"expr": track["expr"], "neck_pose": track["neck_pose"], "jaw_pose": track["jaw_pose"],
                                 "eyes_pose": track["eyes_pose"], "camera": np.asarray(camera)}, shape, cfg, crop)
    return model, rig, cfg, crop, target, exact, seq.image_paths[:N_FRAMES]


def _error(vars_, rig, cfg, crop, target):
    return float(np.linalg.norm(fit.reprojection(vars_, rig, cfg.fit, crop, crop) - target, axis=-1).mean())


def test_the_code_through_the_trackers_camera_shows_the_same_landmarks(procedural_clip, tiny_dataset):
    """Through the tracker's camera at the synthetic focal length, with the neck folded into
    the global rotation, the head lands on its true landmarks (float32 and the skinning
    blend at the neck base: < 0.05 px on a 64 px crop). At the tracker's default focal the
    perspective differs (a closer camera), which the fit's focal length then absorbs."""
    model, rig, cfg, crop, target, _, _ = procedural_clip
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(tiny_dataset / "identity_001")
    cfg = load_config("track", [f"fit.focal_init_over_width={float(seq.K[0, 0, 0]) / crop}"])
    track = {k: np.asarray(v[:N_FRAMES], np.float32) for k, v in seq.flame.items()}
    shape = fit_width(np.asarray(seq.shape, np.float32)[None], model.n_shape)[0]
    params = frame_params(model, shape, track)
    camera = to_camera_code(model, params, jnp.asarray(seq.w2c[:N_FRAMES], jnp.float32),
                            jnp.asarray(seq.K[:N_FRAMES], jnp.float32), crop)
    same_focal = tracker_vars(model, {"expr": track["expr"], "neck_pose": track["neck_pose"],
                                      "jaw_pose": track["jaw_pose"], "eyes_pose": track["eyes_pose"],
                                      "camera": np.asarray(camera)}, shape, cfg, crop)
    assert _error(same_focal, rig, cfg, crop, target) < 0.05


def test_a_good_start_needs_fewer_steps(procedural_clip):
    """From the exact parameters (what a perfect encoder gives) 25 face steps beat the
    default frontal start with its rigid stage and twice the steps."""
    model, rig, cfg, crop, target, exact, _ = procedural_clip
    weight = np.ones(target.shape[:2], np.float32)
    cfg = load_config("track")
    cfg.fit.rigid_steps, cfg.fit.face_steps = 12, 38
    default, _ = fit.fit_clip(target, weight, rig, cfg.fit, crop, crop)
    cfg.fit.rigid_steps, cfg.fit.face_steps = 0, 25
    started, losses = fit.fit_clip(target, weight, rig, cfg.fit, crop, crop, init=exact)
    assert set(losses) == {"face"}                      # a 0-step stage is skipped
    assert _error(started, rig, cfg, crop, target) < _error(default, rig, cfg, crop, target)


def test_encoder_start_has_the_trackers_variables(procedural_clip, encoder_run, tiny_dataset):
    from flashtalker_jax.flame.loader import find_model_file

    model, rig, cfg, crop, target, exact, images = procedural_clip
    run, _ = encoder_run
    init, sha = encoder_init_vars(run, images, find_model_file(tiny_dataset / "flame"), model, cfg, crop)
    assert len(sha) == 64
    assert {k: np.shape(v) for k, v in init.items()} == {k: np.shape(v) for k, v in exact.items()}
    assert all(np.isfinite(v).all() for v in init.values())
    weight = np.ones(target.shape[:2], np.float32)
    cfg.fit.rigid_steps, cfg.fit.face_steps = 0, 5
    fit.fit_clip(target, weight, rig, cfg.fit, crop, crop, init=init)     # accepted as a start
    with pytest.raises(ValueError, match="init\\['expr'\\]"):
        fit.fit_clip(target, weight, rig, cfg.fit, crop, crop, init={**init, "expr": init["expr"][:, :3]})
