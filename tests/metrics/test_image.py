"""PSNR / SSIM / MS-SSIM against scikit-image, pytorch_msssim and hand-computed values.

Tolerances: our metrics run in float32; references run in float64 (scikit-image) or
float32 with a different summation order (pytorch_msssim). SSIM-type values are averages
of O(1) ratios, so 1e-5 absolute covers float32 rounding with margin; PSNR is compared at
1e-4 dB.
"""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from flashtalker_jax.metrics import image


def _pair(rng, shape, noise):
    base = rng.uniform(0, 1, shape).astype(np.float32)
    # Smooth the base so the images have structure at several scales, then perturb it.
    for axis in (0, 1):
        base = (base + np.roll(base, 1, axis) + np.roll(base, -1, axis)) / 3
    other = np.clip(base + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)
    return base, other


def test_psnr_hand_computed():
    a = np.zeros((4, 5, 3), np.float32)
    b = np.full((4, 5, 3), 0.1, np.float32)
    assert float(image.psnr(a, b, 1.0)) == pytest.approx(20.0, abs=1e-4)
    assert np.isinf(float(image.psnr(a, a, 1.0)))


def test_psnr_matches_skimage():
    a, b = _pair(np.random.default_rng(0), (24, 20, 3), 0.05)
    ref = peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1.0)
    assert float(image.psnr(a, b, 1.0)) == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("shape,data_range", [((32, 29, 3), 1.0), ((23, 40, 1), 255.0)])
def test_ssim_matches_skimage(shape, data_range):
    a, b = _pair(np.random.default_rng(1), shape, 0.1)
    a, b = a * data_range, b * data_range
    ref = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=data_range,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                channel_axis=-1)
    ours = float(image.ssim(a, b, data_range))
    assert ours == pytest.approx(ref, abs=1e-5)
    assert float(image.ssim(a, a, data_range)) == pytest.approx(1.0, abs=1e-6)


def test_ssim_batched_equals_per_image():
    rng = np.random.default_rng(2)
    pairs = [_pair(rng, (16, 16, 3), 0.1) for _ in range(3)]
    batch = image.ssim(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), 1.0)
    single = [float(image.ssim(p[0], p[1], 1.0)) for p in pairs]
    np.testing.assert_allclose(np.asarray(batch), single, atol=1e-6)


def test_ms_ssim_matches_pytorch_msssim():
    import torch
    import pytorch_msssim
    # 177 rows: an odd side exercises the one-pixel zero padding before pooling.
    a, b = _pair(np.random.default_rng(3), (2, 177, 168, 3), 0.08)
    ref = pytorch_msssim.ms_ssim(torch.from_numpy(a).permute(0, 3, 1, 2),
                                 torch.from_numpy(b).permute(0, 3, 1, 2),
                                 data_range=1.0, size_average=False).numpy()
    np.testing.assert_allclose(np.asarray(image.ms_ssim(a, b, 1.0)), ref, atol=1e-5)


def test_ms_ssim_rejects_small_images():
    a = np.zeros((64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="short side"):
        image.ms_ssim(a, a, 1.0)
