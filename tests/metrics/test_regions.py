"""Region metrics against straightforward numpy references (and scikit-image for SSIM)."""
from __future__ import annotations

import numpy as np
import pytest

from flashtalker_jax.metrics import image
from flashtalker_jax.metrics.regions import (SSIM_WINDOW, box_mask, evaluation_regions, head_box, neck_ring,
                                             region_scores, union_box)


def blob(shape, centre, radii) -> np.ndarray:
    y, x = np.mgrid[:shape[0], :shape[1]]
    return ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2 <= 1


def head_and_person(size=48):
    head = blob((size, size), (16, 24), (10, 8))
    person = head | (np.mgrid[:size, :size][0] >= 25) & (np.abs(np.mgrid[:size, :size][1] - 24) < 18)
    return head, person


def test_head_box_is_the_grown_bounding_box():
    head, _ = head_and_person()
    ys, xs = np.nonzero(head)
    assert head_box(head, 0) == (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    assert head_box(head, 3) == (ys.min() - 3, ys.max() + 4, xs.min() - 3, xs.max() + 4)
    assert head_box(head, 100) == (0, 48, 0, 48)                     # clipped to the image
    with pytest.raises(ValueError, match="empty"):
        head_box(np.zeros((8, 8), bool), 2)


def reference_ring(head, person, radius):
    """Pixel by pixel: is there a head pixel and a torso pixel within `radius`?"""
    torso = person & ~head
    out = np.zeros_like(head)
    h, w = head.shape
    for y in range(h):
        for x in range(w):
            near_head = near_torso = False
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    yy, xx = y + dy, x + dx
                    if dy * dy + dx * dx <= radius * radius and 0 <= yy < h and 0 <= xx < w:
                        near_head |= head[yy, xx]
                        near_torso |= torso[yy, xx]
            out[y, x] = near_head and near_torso
    return out


@pytest.mark.parametrize("radius", [1, 3])
def test_neck_ring_matches_reference(radius):
    head, person = head_and_person(32)
    ring = neck_ring(head, person, radius)
    np.testing.assert_array_equal(ring, reference_ring(head, person, radius))
    assert ring.any() and not ring[:5].any()                 # at the seam, not at the top of the head


def test_neck_ring_is_empty_safe():
    head, person = head_and_person()
    empty = np.zeros_like(head)
    assert not neck_ring(empty, person, 3).any()             # no head
    assert not neck_ring(head, head, 3).any()                # no torso
    assert not neck_ring(head, person, 0).any()              # head and torso are disjoint


def reference_scores(pred, gt, mask):
    """PSNR: per frame over masked pixels, averaged over non-empty frames; SSIM on the
    union bounding box via image.ssim."""
    values = []
    for p, g, m in zip(pred, gt, mask):
        if m.any():
            mse = np.mean((p[m].astype(np.float64) - g[m]) ** 2)
            values.append(10 * np.log10(1.0 / mse))
    ys, xs = np.nonzero(mask.any(0))
    return np.mean(values), (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)


def batch(seed=0, frames=3, size=48):
    rng = np.random.default_rng(seed)
    gt = rng.random((frames, size, size, 3), dtype=np.float32)
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)
    return pred, gt


def test_region_scores_match_numpy_and_skimage():
    from skimage.metrics import structural_similarity

    pred, gt = batch()
    head, person = head_and_person()
    mask = np.stack([head, np.roll(head, 2, axis=1), np.zeros_like(head)])   # one empty frame
    scores = region_scores(pred, gt, {"head": mask})["head"]
    want_psnr, (y0, y1, x0, x1) = reference_scores(pred, gt, mask)
    assert scores["pixels"] == mask.sum()
    np.testing.assert_allclose(scores["psnr"], want_psnr, rtol=1e-6)
    ssims = [structural_similarity(p[y0:y1, x0:x1], g[y0:y1, x0:x1], gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, channel_axis=-1, data_range=1.0)
             for p, g in zip(pred, gt)]
    np.testing.assert_allclose(scores["ssim"], np.mean(ssims), atol=1e-5)
    assert "lpips" not in scores


def test_full_mask_equals_whole_image_metrics():
    pred, gt = batch(1)
    full = np.ones(pred.shape[:3], bool)
    scores = region_scores(pred, gt, {"all": full})["all"]
    np.testing.assert_allclose(scores["psnr"], np.mean(image.psnr(pred, gt, 1.0)), rtol=1e-5)
    np.testing.assert_allclose(scores["ssim"], np.mean(image.ssim(pred, gt, 1.0)), rtol=1e-5)


def test_pasted_ground_truth_does_not_inflate_region_scores():
    """A composite that is ground truth everywhere except a bad head: the whole frame looks
    good, the head box shows the damage."""
    _, gt = batch(2)
    head, person = head_and_person()
    pred = gt.copy()
    pred[:, head] = 0.5                                      # a grey, featureless head
    regions = evaluation_regions(np.repeat(head[None], 3, 0), np.repeat(person[None] * 255, 3, 0).astype(np.uint8),
                                 margin=2, radius=3)
    scores = region_scores(pred, gt, {"frame": np.ones(head.shape, bool)[None].repeat(3, 0), **regions})
    assert scores["frame"]["psnr"] > scores["head_box"]["psnr"] + 5
    assert scores["frame"]["ssim"] > scores["head_box"]["ssim"]
    assert scores["neck_ring"]["pixels"] > 0


def test_lpips_fn_gets_the_box_crops():
    pred, gt = batch(3)
    mask = np.zeros(pred.shape[:3], bool)
    mask[:, 20:24, 30:33] = True                              # smaller than the SSIM window
    seen = []

    def fake_lpips(a, b):
        seen.append(a.shape)
        return np.abs(a - b).mean((1, 2, 3))

    scores = region_scores(pred, gt, {"spot": mask}, lpips_fn=fake_lpips)["spot"]
    assert seen == [(3, SSIM_WINDOW, SSIM_WINDOW, 3)]
    y0, y1, x0, x1 = union_box(mask, SSIM_WINDOW)
    assert (y1 - y0, x1 - x0) == (SSIM_WINDOW, SSIM_WINDOW) and y0 <= 20 and y1 >= 24 and x0 <= 30 and x1 >= 33
    np.testing.assert_allclose(scores["lpips"], np.abs(pred - gt)[:, y0:y1, x0:x1].mean(), rtol=1e-5)


def test_union_box_grows_inside_the_image():
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 0, 19] = True                                    # a corner pixel
    y0, y1, x0, x1 = union_box(mask, SSIM_WINDOW)
    assert (y0, y1, x0, x1) == (0, SSIM_WINDOW, 20 - SSIM_WINDOW, 20)
    assert union_box(np.zeros((2, 20, 20), bool), SSIM_WINDOW) is None


def test_empty_region_gives_nan():
    pred, gt = batch(4)
    scores = region_scores(pred, gt, {"none": np.zeros(pred.shape[:3], bool)}, lpips_fn=lambda a, b: 0)["none"]
    assert scores["pixels"] == 0 and np.isnan(scores["psnr"]) and np.isnan(scores["ssim"]) and np.isnan(scores["lpips"])


def test_box_mask():
    mask = box_mask((2, 5, 1, 3), 6, 4)
    assert mask.sum() == 6 and mask[2:5, 1:3].all()
