"""The motion encoder's image loss (encoder/image_loss.py) on the root conftest's tiny
procedural set, with an e2v prior written untrained (its Gaussians are a fixed function of
the reference frame: what the loss needs is a differentiable render, not a good one):
the gradient reaches the encoder, a few steps on a fixed batch lower the image loss, the
render of the TRUE parameters matches the frame better than a shifted head, and the
config / prior errors name what to fix."""
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flashtalker_jax.errors import ConfigError, ModelFileError


@pytest.fixture(scope="module")
def tiny_prior(tiny_dataset, tmp_path_factory):
    """An untrained e2v prior folder (pretrain_e2v:quick sizes) on the tiny set's FLAME model."""
    from flashtalker_jax.config import load_config
    from flashtalker_jax.e2v.prior import write_prior
    from flashtalker_jax.e2v.task import build_geometry, make_generator

    cfg = load_config("pretrain_e2v:quick", [f"task.dataset={tiny_dataset}"]).task
    generator = make_generator(cfg, build_geometry(cfg, tiny_dataset / "flame"), nnx.Rngs(0))
    return write_prior(tmp_path_factory.mktemp("prior") / "prior", generator, cfg, 0)


def image_config(tiny_dataset, prior, *overrides):
    """The quick encoder with the image loss alone weighted (code, transform, vertices 0)."""
    from flashtalker_jax.config import load_config

    return load_config("motion_encoder:quick", [
        f"task.dataset={tiny_dataset}", f"task.image_prior={prior}", "task.loss.image=1.0",
        "task.loss.image_ssim=0.2", "task.image_resolution=16", "task.image_rows=2", "task.loss.code=0.0",
        "task.loss.transform=0.0", "task.loss.vertices=0.0", *overrides]).task


def test_gradient_reaches_the_encoder_and_steps_lower_the_image_loss(tiny_dataset, tiny_prior):
    from flashtalker_jax.encoder.task import make_task

    task = make_task(image_config(tiny_dataset, tiny_prior))
    data = task.make_data(0, 1)
    batch = next(data)
    assert batch["target"].shape == (4, 1, 16, 16, 3) and batch["mask"].shape == (4, 1, 16, 16)
    model = task.make_model(nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, batch):
        return task.loss_fn(nnx.merge(graphdef, params, rest), batch, None)

    grad_fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (total, metrics), grads = grad_fn(params, batch)
    # only the image term is weighted, so the whole loss is it
    np.testing.assert_allclose(float(total), float(metrics["image_l1"] + 0.2 * metrics["image_d_ssim"]),
                               rtol=1e-5)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    backbone = jax.tree_util.tree_leaves(grads["backbone"])
    assert sum(float(jnp.sum(g ** 2)) for g in backbone) > 0          # through the render to the convs
    camera_head = jax.tree_util.tree_leaves(grads["heads"]["camera"])
    assert sum(float(jnp.sum(g ** 2)) for g in camera_head) > 0       # and through the camera code

    # a few Adam steps on that batch (the one compiled function again) lower its image loss
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit   # one small compile instead of many eager ops
    def update(grads, opt_state, params):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    before = float(total)
    for _ in range(6):
        params, opt_state = update(grads, opt_state, params)
        # wait for the step: the rasterizer's overflow check is a host callback, and eager
        # ops dispatched while it runs can deadlock XLA:CPU (seen here, not in the jitted trainer)
        (total, _), grads = jax.block_until_ready(grad_fn(params, batch))
    assert float(total) < 0.97 * before, (before, float(total))


def test_render_of_the_true_parameters_beats_a_shifted_head(tiny_dataset, tiny_prior):
    """The render posed by the folder's own parameters (through code_params, as the loss
    poses the prediction) lands on the frame: its L1 is below that of the same head moved
    by a tenth of the crop, so the loss points toward the true pose."""
    from flashtalker_jax.encoder.image_loss import load_identity_avatars, make_image_loss
    from flashtalker_jax.encoder.task import dataset_folders, load_clips, resolve_flame_file

    cfg = image_config(tiny_dataset, tiny_prior, "task.image_resolution=32")   # the shift: 3 px
    folders = dataset_folders(cfg.dataset)
    avatars = load_identity_avatars(tiny_prior, resolve_flame_file("", folders), folders)
    _, _, clips = load_clips(cfg, ("train",), avatars.mask_source)
    clip, rows_at = clips[1], np.arange(0, 12, 3)
    motion, e = jnp.asarray(clip.motion[rows_at]), cfg.n_expr   # MOTION_KEYS order, neck_jaw split
    parts = {"expr": motion[:, :e], "neck_pose": motion[:, e:e + 3], "jaw_pose": motion[:, e + 3:e + 6],
             "eyes_pose": motion[:, e + 6:e + 12], "camera": motion[:, e + 12:]}
    shape = jnp.broadcast_to(jnp.asarray(clip.shape), (len(rows_at), len(clip.shape)))
    rows = {"identity": jnp.ones(len(rows_at), jnp.int32), "viewmat": jnp.asarray(clip.viewmat[rows_at]),
            "K": jnp.asarray(clip.K[rows_at]), "target": clip.targets[rows_at], "mask": clip.masks[rows_at]}
    image_loss = jax.jit(make_image_loss(cfg, avatars))
    _, true = image_loss(parts, shape, rows)
    _, shifted = image_loss({**parts, "camera": parts["camera"].at[:, 3].add(0.1)}, shape, rows)
    assert float(true["image_l1"]) < 0.8 * float(shifted["image_l1"]), (true, shifted)


def test_image_loss_without_a_prior_names_the_key(tiny_dataset):
    from flashtalker_jax.encoder.task import make_task

    with pytest.raises(ConfigError, match="task.image_prior"):
        make_task(image_config(tiny_dataset, ""))
    with pytest.raises(ConfigError, match="task.augment.enabled"):
        make_task(image_config(tiny_dataset, "x", "task.augment.enabled=True"))


def test_prior_of_another_flame_model_is_refused(tiny_dataset, tiny_prior, tmp_path):
    """A prior whose config names another FLAME model (one byte appended) is refused, naming
    that model's file, before any frame is read."""
    import json

    from flashtalker_jax.encoder.task import make_task
    from flashtalker_jax.flame.loader import find_model_file

    other_flame = tmp_path / "flame"
    shutil.copytree(tiny_dataset / "flame", other_flame)
    pkl = find_model_file(other_flame)
    with open(pkl, "ab") as fh:
        fh.write(b"\0")
    other = tmp_path / "prior"
    shutil.copytree(tiny_prior, other)
    saved = json.loads((other / "config.json").read_text())
    saved["flame"] = str(other_flame)
    (other / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ModelFileError, match=str(pkl)):
        make_task(image_config(tiny_dataset, other))


def test_eval_motion_encoder_reports_the_render_it_drives(encoder_run, tiny_dataset, tiny_prior, tmp_path):
    """`eval-motion-encoder --render-prior`: the landmark / jitter metrics of every clip plus
    the PSNR of its one-shot render posed by the encoder and by the reference, the latter
    what render_psnr gives for the folder's own parameters (whatever the encoder)."""
    import json

    from flashtalker_jax.cli.main import main
    from flashtalker_jax.encoder.image_loss import render_psnr

    run, _ = encoder_run
    data = str(tiny_dataset / "identity_001")
    report = tmp_path / "eval.json"
    assert main(["eval-motion-encoder", "--encoder", str(run), "--data", data, "--splits", "test",
                 "--render-prior", str(tiny_prior), "--render-size", "16", "--report", str(report)]) == 0
    clips = json.loads(report.read_text())["clips"]
    assert [c["clip"] for c in clips] == ["identity_001"]
    direct = render_psnr({}, data, tiny_prior, ("test",), 16)
    for clip, row in zip(clips, direct, strict=True):
        assert clip["frames"] == row["frames"] > 0
        assert np.isfinite([clip["lmk_px"], clip["jitter_px"], clip["psnr_render"]]).all()
        np.testing.assert_allclose(clip["psnr_render_reference"], row["psnr_reference"], rtol=1e-6)
        assert 5.0 < clip["psnr_render"] < 60.0
