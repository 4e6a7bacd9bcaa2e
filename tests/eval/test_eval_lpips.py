"""LPIPS in `eval`: with user weights (random AlexNet + lin layers in torchvision/lpips key
layout, as safetensors) the image scores carry lpips_alex, equal to the metric's own mean
and 0 for identical frames; the other net is reported unavailable with the reason."""
import numpy as np
import pytest
from safetensors.numpy import save_file

from flashtalker_jax.eval.run import load_lpips_models
from flashtalker_jax.eval.scores import image_scores
from flashtalker_jax.metrics.lpips import lpips_distance
from lpips_weights import random_alex_lpips

SIZE = 48  # smallest size that keeps every AlexNet tap non-empty


def _random_weights(tmp_path):
    backbone, lin = random_alex_lpips()
    save_file(backbone, tmp_path / "alex.safetensors")
    save_file(lin, tmp_path / "lin.safetensors")
    return tmp_path / "alex.safetensors", tmp_path / "lin.safetensors"


def test_lpips_with_user_weights(tmp_path):
    models, reasons = load_lpips_models(_random_weights(tmp_path), "alex")
    assert set(models) == {"lpips_alex"}
    assert reasons == {"lpips_vgg": "unavailable: weights were given for lpips_alex only"}
    rng = np.random.default_rng(1)
    gt = rng.random((3, SIZE, SIZE, 3)).astype(np.float32)
    pred = np.clip(gt + 0.2 * rng.normal(size=gt.shape), 0, 1).astype(np.float32)
    boxes = [(10, 30, 10, 30)] * 3
    values, _, _ = image_scores(pred, gt, boxes, models)
    expected = float(np.mean(lpips_distance(models["lpips_alex"], pred, gt, normalize=True)))
    assert values["lpips_alex"] == pytest.approx(expected, rel=1e-6) and expected > 0
    same, _, _ = image_scores(gt, gt, boxes, models)
    assert same["lpips_alex"] == pytest.approx(0.0, abs=1e-7)  # identical frames: no distance


def test_no_lpips_weights_is_unavailable_not_zero():
    models, reasons = load_lpips_models(None, "alex")
    assert models == {}
    assert reasons["lpips_alex"].startswith("unavailable: no LPIPS")
    assert reasons["lpips_vgg"].startswith("unavailable: no LPIPS") and "vgg" in reasons["lpips_vgg"]
