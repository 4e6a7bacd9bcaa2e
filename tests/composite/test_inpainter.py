"""Body inpainter (composite/inpainter.py, composite/train_inpainter.py).

Outside reference: scipy.ndimage binary_dilation / grey_dilation with the same square
structuring element (exact equality: dilation of {0, 1} or 8-bit-like values is a max,
no rounding). The training test runs the `quick` preset on synthetic 64x64 frames: a
shaded disk "head" over a striped "torso" and a flat background.
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import ndimage

from flashtalker_jax.composite.inpainter import (BodyInpainter, base_image, composite, dilate, flat_params,
                                                 load_inpainter, make_inpainter, remove_region, save_inpainter)
from flashtalker_jax.composite.train_inpainter import (ARRAY_KEYS, SeamPatches, evaluate, make_task_from_arrays,
                                                       seam_centres, train_inpainter)
from flashtalker_jax.config import load_config
from flashtalker_jax.errors import InputFileError, ModelFileError
from flashtalker_jax.train.tasks import get_task
from flashtalker_jax.train.trainer import fit

SIZE = 64


def synthetic_identity(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """n frames: a moving shaded disk head (its render = the head pixels, alpha = the disk),
    a head mask 2 px larger (the tracked head-and-neck mask is looser than the render),
    vertical stripes below 60% of the height that shift with the frame, a flat sky above."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = {k: [] for k in ARRAY_KEYS}
    for i in range(n):
        cy, cx, r = SIZE * 0.4 + rng.uniform(-4, 4), SIZE / 2 + rng.uniform(-6, 6), SIZE * 0.2
        stripes = np.where(((xx + 2 * i) // 4) % 2 == 0, 0.8, 0.3)[..., None] * np.array([0.9, 0.5, 0.3])
        body = np.where((yy > SIZE * 0.6)[..., None], stripes, np.array([0.2, 0.4, 0.7]))
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        head = np.array([0.95, 0.8, 0.7]) * (0.8 + 0.2 * np.cos(yy / 5))[..., None]
        out["frame"].append(np.where(disk[..., None], head, body))
        out["head_rgb"].append(head * disk[..., None])
        out["head_alpha"].append(disk * 1.0)
        out["head_mask"].append(((yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 2) ** 2) * 1.0)
    return {k: np.round(np.clip(np.stack(v), 0, 1) * 255).astype(np.uint8) for k, v in out.items()}


def unit(arrays, rows=slice(None)):
    return {k: jnp.asarray(arrays[k][rows], jnp.float32) / 255.0 for k in ARRAY_KEYS}


# Every net of this file has the quick preset's size (width 8, depth 2): eager
# initialisation compiles each parameter shape once (seconds on CPU), then reuses it.
QUICK = dict(base_channels=8, depth=2)


def perturbed_net(seed: int) -> BodyInpainter:
    """A net whose last layer is not zero, so its output differs from the base image."""
    net = BodyInpainter(**QUICK, rngs=nnx.Rngs(seed))
    kernel = net.out.kernel
    kernel[...] = 0.3 * jax.random.normal(jax.random.key(seed + 1), kernel.shape)
    return net


# ------------------------------------------------------------------ dilation

def test_dilate_matches_scipy_binary_dilation_per_sample_radius():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 37, 52)) > 0.985
    masks[1, 0, 0] = masks[2, -1, 20] = True            # seeds on the border: zero-border semantics
    radius = np.array([0, 1, 3, 7], np.int32)
    got = np.asarray(jax.jit(dilate)(masks.astype(np.float32), jnp.asarray(radius)))   # traced radius
    for mask, r, out in zip(masks, radius, got):
        square = np.ones((2 * r + 1, 2 * r + 1), bool)
        np.testing.assert_array_equal(out, ndimage.binary_dilation(mask, structure=square).astype(np.float32))


def test_dilate_soft_mask_matches_scipy_grey_dilation():
    soft = np.random.default_rng(1).integers(0, 256, (2, 20, 24)).astype(np.float32) / 255.0
    got = np.asarray(dilate(soft, 2))
    for mask, out in zip(soft, got):
        # 'nearest' padding never exceeds the in-image maximum, i.e. the border is ignored.
        np.testing.assert_array_equal(out, ndimage.grey_dilation(mask, size=(5, 5), mode="nearest"))


def test_remove_region_is_the_dilated_union_of_alpha_and_mask():
    alpha = np.zeros((1, 16, 16), np.float32)
    mask = np.zeros((1, 16, 16), np.float32)
    alpha[0, 4, 4], alpha[0, 5, 5], mask[0, 10, 10] = 0.9, 0.4, 1.0     # 0.4 is below the half threshold
    region = np.asarray(remove_region(alpha, mask, 1))[0]
    expected = np.zeros((16, 16), np.float32)
    expected[3:6, 3:6] = expected[9:12, 9:12] = 1.0
    np.testing.assert_array_equal(region, expected)


# ------------------------------------------------------------------ compositing

def test_composite_shapes_and_untouched_pixels_equal_the_frame_exactly():
    x = unit(synthetic_identity(2, seed=3))
    remove = remove_region(x["head_alpha"], x["head_mask"], 3)
    out = np.asarray(composite(perturbed_net(0), x["head_rgb"], x["head_alpha"], x["frame"], remove))
    assert out.shape == (2, SIZE, SIZE, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    outside = np.asarray(remove) == 0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(out[outside], np.asarray(x["frame"])[outside])
    # Inside, the (perturbed) net paints something other than the frame.
    assert np.abs(out[~outside] - np.asarray(x["frame"])[~outside]).mean() > 1e-2


def test_zero_last_layer_gives_the_base_image():
    x = unit(synthetic_identity(2, seed=4))
    net = BodyInpainter(**QUICK, norm_groups=2, rngs=nnx.Rngs(0))   # the GroupNorm variant too
    keep = 1.0 - remove_region(x["head_alpha"], x["head_mask"], 2)
    masked = x["frame"] * keep[..., None]
    out = net(x["head_rgb"], x["head_alpha"], masked, keep)
    alpha = np.asarray(x["head_alpha"])[..., None]
    expected = alpha * np.asarray(x["head_rgb"]) + (1 - alpha) * np.asarray(masked)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(base_image(x["head_rgb"], x["head_alpha"], masked)))


def test_frame_size_not_divisible_by_two_to_the_depth_is_a_value_error():
    net = BodyInpainter(**QUICK, rngs=nnx.Rngs(0))
    rgb, alpha = jnp.zeros((1, 36, 42, 3)), jnp.zeros((1, 36, 42))
    with pytest.raises(ValueError, match="multiples of 4"):
        composite(net, rgb, alpha, rgb, alpha)


# ------------------------------------------------------------------ data

def test_seam_patches_are_deterministic_resumable_and_split_over_processes():
    arrays = synthetic_identity(6, seed=5)
    centres = seam_centres(arrays, band=6, seed=0)

    def make(process_index=0, process_count=1):
        return SeamPatches(arrays, centres, 32, (2, 6), 4, 7, process_index, process_count)

    full, batches = make(), []
    for step in range(3):
        if step == 2:   # the state a checkpoint after two steps holds, through its JSON file
            saved = json.loads(json.dumps(full.get_state()))
        batches.append(next(full))
    assert batches[0]["frame"].shape == (4, 32, 32, 3) and batches[0]["head_mask"].shape == (4, 32, 32)
    assert batches[0]["radius"].dtype == np.int32 and set(batches[0]["radius"]) <= set(range(2, 7))
    resumed = make()
    resumed.set_state(saved)
    replayed = next(resumed)
    halves = [next(make(i, 2)) for i in range(2)]             # two processes, the same global batch
    for key in batches[0]:
        np.testing.assert_array_equal(replayed[key], batches[2][key])
        np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), batches[0][key])
    # Every patch straddles the seam: it holds both head and non-head pixels.
    heads = (batches[0]["head_alpha"] > 127) | (batches[0]["head_mask"] > 127)
    assert heads.any(axis=(1, 2)).all() and (~heads).any(axis=(1, 2)).all()


def test_registered_task_reads_the_npz_and_names_a_bad_one(tmp_path):
    arrays = synthetic_identity(4, seed=6)
    path = tmp_path / "arrays.npz"
    np.savez(path, **arrays)
    cfg = load_config("inpainter.py:quick", [f"--config.task.data={path}"])
    batch = next(get_task(cfg.task).make_data(0, 1))
    assert batch["head_rgb"].shape == (4, 32, 32, 3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{k: v for k, v in arrays.items() if k != "head_mask"})
    cfg.task.data = str(bad)
    with pytest.raises(InputFileError, match="bad.npz.*head_mask"):
        get_task(cfg.task)


# ------------------------------------------------------------------ training and the folder

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(arrays, run folder, train_inpainter's result) of the quick preset on 8 frames."""
    arrays = synthetic_identity(8, seed=0)
    run = tmp_path_factory.mktemp("inpainter_run")
    result = train_inpainter(arrays, load_config("inpainter.py:quick"), run)
    return arrays, run, result


def test_training_lowers_the_seam_error(trained):
    arrays, run, result = trained
    assert result["status"] == "completed" and result["steps"] == 20
    cfg = load_config("inpainter.py:quick")
    untrained = make_inpainter(cfg.task, nnx.Rngs(cfg.train.seed))
    net, _ = load_inpainter(result["inpainter"])
    before, after = evaluate(untrained, arrays, radius=4), evaluate(net, arrays, radius=4)
    assert after["seam_l1"] < 0.8 * before["seam_l1"], (before, after)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == 20 and logged[-1]["seam_l1"] < logged[0]["seam_l1"]


def test_saved_folder_round_trips_to_identical_outputs(trained, tmp_path):
    arrays, _, result = trained
    net, task_cfg = load_inpainter(result["inpainter"])
    assert task_cfg.name == "body_inpainter" and task_cfg.base_channels == 8
    copy, _ = load_inpainter(save_inpainter(tmp_path / "copy", net, task_cfg))
    x = unit(arrays, slice(0, 2))
    remove = remove_region(x["head_alpha"], x["head_mask"], 5)
    outputs = [np.asarray(composite(m, x["head_rgb"], x["head_alpha"], x["frame"], remove)) for m in (net, copy)]
    np.testing.assert_array_equal(*outputs)
    for key, value in flat_params(net).items():
        np.testing.assert_array_equal(flat_params(copy)[key], value)


class Interrupted(Exception):
    """Raised by the after_step hook to cut a run short, as a killed job would be."""


def test_interrupted_run_resumes_to_the_same_parameters(trained, tmp_path):
    arrays, _, result = trained
    cfg = load_config("inpainter.py:quick")      # checkpoints every 10 steps, synchronously

    def stop_after_the_checkpoint(step, state):
        if step == 13:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(make_task_from_arrays(cfg.task, arrays), cfg, tmp_path, after_step=stop_after_the_checkpoint)
    resumed = train_inpainter(arrays, cfg, tmp_path, resume=True)
    assert resumed["status"] == "completed" and resumed["steps"] == 20
    want = flat_params(load_inpainter(result["inpainter"])[0])
    got = flat_params(load_inpainter(resumed["inpainter"])[0])
    for key, value in want.items():   # same batches and steps replayed from step 10: bit-identical on CPU
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def _folder(tmp_path):
    cfg = load_config("inpainter.py:quick").task
    return save_inpainter(tmp_path / "inpainter", make_inpainter(cfg, nnx.Rngs(0)), cfg)


def test_damaged_params_raise_model_file_error_naming_the_file(tmp_path):
    folder = _folder(tmp_path)
    data = bytearray((folder / "params.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "params.npz").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"params\.npz: sha256 differs"):
        load_inpainter(folder)


def test_wrong_shape_params_raise_model_file_error(tmp_path):
    folder = _folder(tmp_path)
    params = dict(np.load(folder / "params.npz"))
    key = next(k for k in params if "kernel" in k)
    params[key] = np.zeros((1, 2, 3, 4), np.float32)
    np.savez(folder / "params.npz", **params)
    meta = json.loads((folder / "config.json").read_text())
    import hashlib
    meta["params_sha256"] = hashlib.sha256((folder / "params.npz").read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"params\.npz: parameter shapes differ.*" + key):
        load_inpainter(folder)


def test_wrong_format_version_and_missing_folder_raise_model_file_error(tmp_path):
    folder = _folder(tmp_path)
    meta = json.loads((folder / "config.json").read_text())
    meta["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"config\.json: inpainter format_version 99"):
        load_inpainter(folder)
    with pytest.raises(ModelFileError, match="nowhere: inpainter folder not found"):
        load_inpainter(tmp_path / "nowhere")
