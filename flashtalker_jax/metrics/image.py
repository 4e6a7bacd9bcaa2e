"""Image-quality metrics: PSNR, SSIM and MS-SSIM as pure jnp functions.

Images are (..., H, W, C) float arrays in [0, data_range]; every function returns one value
per leading index (shape (...)). Definitions follow the published ones:
- PSNR: 10 log10(data_range^2 / MSE), as scikit-image `peak_signal_noise_ratio`.
- SSIM: Wang et al. 2004 with an 11-tap Gaussian window (sigma 1.5), K1 0.01, K2 0.03,
  population (not sample) covariances, averaged over the pixels whose window lies fully
  inside the image and then over channels. This equals scikit-image
  `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  channel_axis=-1)`: scikit-image filters the padded image and crops (win-1)/2 pixels per
  border, which leaves exactly the windows that never touch the padding.
- MS-SSIM: Wang et al. 2003, five scales with weights (0.0448, 0.2856, 0.3001, 0.2363,
  0.1333); contrast-structure terms at the first four scales and full SSIM at the last,
  each clipped at zero, 2x2 average pooling between scales (zero-padded by one pixel on an
  odd side, as the common pytorch_msssim implementation does), per channel then averaged.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check_pair(a, b):
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim < 3:
        raise ValueError(f"images must be (..., H, W, C), got shape {a.shape}")


@jax.jit
def psnr(a, b, data_range: float):
    """Peak signal-to-noise ratio in dB of (..., H, W, C) images; +inf where they are equal."""
    _check_pair(a, b)
    mse = jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2, axis=(-3, -2, -1))
    return 10.0 * jnp.log10(data_range**2 / mse)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps with radius int(truncate * sigma + 0.5) (scipy's rule)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def _filter_valid(x, window):
    """Separable 'valid' filtering of (..., H, W, C) along H then W.

    Written as weighted sums of shifted slices, which XLA fuses: on CPU this ran 4x faster
    than a banded matmul and 20x faster than a depthwise lax.conv (512^2, 15 channels).
    """
    n, h, w = len(window), x.shape[-3], x.shape[-2]
    x = sum(float(window[k]) * x[..., k : h - n + 1 + k, :, :] for k in range(n))
    return sum(float(window[k]) * x[..., :, k : w - n + 1 + k, :] for k in range(n))


def _ssim_maps(a, b, data_range, window, k1, k2):
    """Per-pixel SSIM and contrast-structure maps over the valid region, (..., h, w, C)."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # One filter pass over the five statistics stacked on the channel axis.
    moments = _filter_valid(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1), window)
    mu_a, mu_b, e_aa, e_bb, e_ab = jnp.split(moments, 5, axis=-1)
    var_a, var_b, cov = e_aa - mu_a**2, e_bb - mu_b**2, e_ab - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return luminance * cs, cs


@partial(jax.jit, static_argnames=("sigma", "k1", "k2"))
def ssim(a, b, data_range: float, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Structural similarity of (..., H, W, C) images (Gaussian window, see module doc)."""
    _check_pair(a, b)
    window = gaussian_window(sigma)
    if min(a.shape[-3], a.shape[-2]) < len(window):
        raise ValueError(f"SSIM needs images of at least {len(window)} px, got {a.shape}")
    s, _ = _ssim_maps(a.astype(jnp.float32), b.astype(jnp.float32), data_range, window, k1, k2)
    return jnp.mean(s, axis=(-3, -2, -1))


def _avg_pool2(x):
    """2x2 average pooling; an odd side is zero-padded by one pixel at both ends first."""
    pad_h, pad_w = x.shape[-3] % 2, x.shape[-2] % 2
    pads = [(0, 0)] * (x.ndim - 3) + [(pad_h, pad_h), (pad_w, pad_w), (0, 0)]
    x = jnp.pad(x, pads)
    h, w = x.shape[-3] // 2 * 2, x.shape[-2] // 2 * 2
    x = x[..., :h, :w, :]
    return (x[..., 0::2, 0::2, :] + x[..., 1::2, 0::2, :]
            + x[..., 0::2, 1::2, :] + x[..., 1::2, 1::2, :]) / 4.0


def ms_ssim(a, b, data_range: float, weights=MS_SSIM_WEIGHTS, sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03):
    """Multi-scale SSIM of (..., H, W, C) images; the short side must exceed 10 * 2^(scales-1).

    `weights` gives one exponent per scale (any sequence; it is a compile-time constant).
    """
    return _ms_ssim(a, b, data_range, tuple(float(w) for w in weights), sigma, k1, k2)


@partial(jax.jit, static_argnames=("weights", "sigma", "k1", "k2"))
def _ms_ssim(a, b, data_range, weights, sigma, k1, k2):
    _check_pair(a, b)
    window = gaussian_window(sigma)
    min_side = (len(window) - 1) * 2 ** (len(weights) - 1)
    if min(a.shape[-3], a.shape[-2]) <= min_side:
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs a short side > {min_side} px,"
                         f" got {a.shape}")
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    result = 1.0
    for level, weight in enumerate(weights):
        s, cs = _ssim_maps(a, b, data_range, window, k1, k2)
        last = level == len(weights) - 1
        term = jnp.maximum(jnp.mean(s if last else cs, axis=(-3, -2)), 0.0)  # (..., C)
        result = result * term**weight
        if not last:
            a, b = _avg_pool2(a), _avg_pool2(b)
    return jnp.mean(result, axis=-1)


@jax.jit
def mean_abs_error(a, b):
    """Mean absolute difference (L1) of (..., H, W, C) images, in their units -> (...)."""
    _check_pair(a, b)
    return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)), axis=(-3, -2, -1))
