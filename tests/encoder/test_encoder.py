"""The motion encoder end to end on a tiny procedural set: its outputs are FLAME parameters
that drive flame_forward, a short training lowers the code loss, the folder round-trips and
refuses another FLAME model, and the windows are deterministic per step."""
import jax
import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError


def test_short_training_lowers_the_code_loss(encoder_run, tiny_dataset):
    """On fixed training windows: the trained encoder's code + transform losses against an
    untrained one's (per-step logged losses of batch 4 are too noisy to compare)."""
    from flax import nnx

    from flashtalker_jax.encoder.folder import read_encoder
    from flashtalker_jax.encoder.task import make_task

    run, summary = encoder_run
    assert summary["status"] == "completed" and summary["steps"] == 80
    cfg = read_encoder(run).task_cfg
    task = make_task(cfg)
    data = task.make_data(0, 1)
    batches = [next(data) for _ in range(4)]

    def losses(model):
        metrics = [task.loss_fn(model, b, None)[1] for b in batches]
        return {k: float(np.mean([m[k] for m in metrics])) for k in ("code", "transform")}

    before, after = losses(task.make_model(nnx.Rngs(0))), losses(read_encoder(run).encoder)
    assert after["code"] < 0.8 * before["code"], (before, after)
    assert after["transform"] < before["transform"], (before, after)


def test_outputs_are_flame_params_that_drive_flame_forward(encoder_run, tiny_dataset):
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.encoder.folder import read_encoder
    from flashtalker_jax.encoder.predict import encode_clip, resize_crops, to_flame_params
    from flashtalker_jax.flame.lbs import flame_forward
    from flashtalker_jax.flame.loader import find_model_file, load_flame_model
    from flashtalker_jax.flame.model import FlameParams

    run, _ = encoder_run
    flame_file = find_model_file(tiny_dataset / "flame")
    folder = read_encoder(run, flame_file)
    assert folder.meta["temporal_kernel"] == 3 and folder.encoder.temporal is not None
    seq = read_vhap(tiny_dataset / "identity_000")
    crops = resize_crops([seq.load_image(i) for i in range(10)], folder.encoder.resolution)
    motion, shape = encode_clip(folder.encoder, crops, batch=4)
    raw, _ = encode_clip(folder.encoder, crops, batch=4, temporal=False)
    assert motion["expr"].shape == (10, 50) and shape.shape == (100,)
    assert not np.allclose(motion["expr"], raw["expr"])      # the temporal head ran
    flame = load_flame_model(flame_file, n_shape=100, n_expr=50)
    params = to_flame_params(flame, motion, shape, seq.w2c[0], seq.K[0], seq.width)
    assert isinstance(params, FlameParams) and params.batch == 10
    out = jax.jit(flame_forward)(flame, params)
    assert out.vertices.shape == (10, flame.n_vertices, 3) and np.isfinite(np.asarray(out.vertices)).all()


def test_another_flame_model_is_refused(encoder_run, tmp_path):
    from flashtalker_jax.encoder.folder import read_encoder

    run, _ = encoder_run
    other = tmp_path / "generic_model.pkl"
    other.write_bytes(b"another model")
    with pytest.raises(ModelFileError, match="not the FLAME model the encoder was trained with"):
        read_encoder(run, other)


def test_damaged_weights_are_named(encoder_run, tmp_path):
    import shutil

    from flashtalker_jax.encoder.folder import read_encoder

    run, _ = encoder_run
    copy = tmp_path / "encoder"
    shutil.copytree(run / "encoder", copy)
    (copy / "encoder.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelFileError, match="encoder.npz"):
        read_encoder(copy)


def test_windows_depend_on_the_step_alone(tiny_dataset):
    from flashtalker_jax.config import load_config
    from flashtalker_jax.encoder.task import WindowIterator, load_clips

    cfg = load_config("motion_encoder:quick", [f"task.dataset={tiny_dataset}"]).task
    _, _, clips = load_clips(cfg, ("train",))
    whole = WindowIterator(clips, 3, 4, seed=0)
    halves = [WindowIterator(clips, 3, 4, seed=0, process_index=i, process_count=2) for i in range(2)]
    for it in (whole, *halves):
        it.set_state({"step": 5})
    a = next(whole)
    b = [next(h) for h in halves]
    np.testing.assert_array_equal(a["frames"], np.concatenate([x["frames"] for x in b]))
    np.testing.assert_array_equal(a["motion"], np.concatenate([x["motion"] for x in b]))
    assert a["frames"].shape[:2] == (4, 3)


def test_augmented_frames_and_targets_move_together():
    """A bright dot's centroid after augment_images lands where augment_motion moves the
    position code (position = pixel / width - 0.5), and the scale code grows by the zoom."""
    from flashtalker_jax.encoder.task import Augment, augment_images, augment_motion

    r = 64
    image = np.zeros((1, r, r, 3), np.uint8)
    image[0, 20:24, 40:44] = 255                       # dot centred at pixel (42, 22)
    aug = Augment(zoom=1.1, shift=(0.03, -0.04))
    moved = augment_images(image, aug)[0, ..., 0].astype(np.float64)
    ys, xs = np.mgrid[:r, :r] + 0.5
    centroid = np.array([(xs * moved).sum(), (ys * moved).sum()]) / moved.sum()
    motion = np.zeros((1, 8), np.float32)
    motion[0, -3:-1] = np.array([42.0, 22.0]) / r - 0.5
    out = augment_motion(motion, aug)
    np.testing.assert_allclose((out[0, -3:-1] + 0.5) * r, centroid, atol=0.1)   # bilinear resampling
    np.testing.assert_allclose(out[0, -1], np.log(1.1), rtol=1e-6)
    np.testing.assert_array_equal(augment_images(image, Augment()), image)


def test_a_temporal_head_starts_as_the_per_frame_encoder_it_is_grafted_on():
    """task.init_encoder: the per-frame encoder's weights go into a model with a temporal
    head, whose zero last layer makes it output exactly the per-frame codes at first."""
    from flax import nnx

    from flashtalker_jax.avatar.export import flat_state
    from flashtalker_jax.config import load_config
    from flashtalker_jax.encoder.model import motion_widths
    from flashtalker_jax.encoder.task import make_encoder, with_weights
    from flashtalker_jax.errors import ConfigError

    cfg = load_config("motion_encoder:quick").task
    channels = sum(motion_widths(cfg.n_expr).values())
    rng = np.random.default_rng(0)
    stats = {"motion_mean": rng.normal(size=channels), "motion_std": np.ones(channels),
             "shape_mean": np.zeros(cfg.n_shape), "shape_std": np.ones(cfg.n_shape)}
    per_frame = make_encoder(cfg, stats, nnx.Rngs(0))
    cfg_t = load_config("motion_encoder:quick", ["task.model.temporal_kernel=3"]).task
    temporal = with_weights(make_encoder(cfg_t, {k: v * 0 + 1 for k, v in stats.items()}, nnx.Rngs(1)),
                            flat_state(per_frame), "RUN")
    frames = rng.uniform(size=(2, 5, cfg.resolution, cfg.resolution, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(temporal.motion(frames)), np.asarray(per_frame.motion(frames)),
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(temporal.motion_mean[...]), stats["motion_mean"].astype(np.float32))
    wider = make_encoder(load_config("motion_encoder:quick", ["task.model.hidden=32"]).task, stats, nnx.Rngs(0))
    with pytest.raises(ConfigError, match="task.model differs"):
        with_weights(wider, flat_state(per_frame), "RUN")
