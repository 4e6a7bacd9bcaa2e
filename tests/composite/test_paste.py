"""paste_back is the inverse geometry of import_video.crop_frame, blends only inside the
region, and leaves every other source pixel exactly as it was."""
from __future__ import annotations

import numpy as np
import pytest

from flashtalker_jax.composite.paste import box_window, feather, paste_back
from flashtalker_jax.data.import_video import crop_frame

HEIGHT, WIDTH, SIZE = 96, 160, 64          # a small non-square "1280x720" frame
INSIDE = (50.3, 12.6, 70.9)                # box fully inside the frame
OUTSIDE = (-13.4, 30.2, 90.7)              # leaves the frame on the left and at the bottom
SMALL = (60.2, 20.7, 41.5)                 # side < crop size: paste_back downsamples


def smooth_frame(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A band-limited image (wavelengths >= 24 px) so that bilinear resampling errors are
    small and predictable (second-derivative bound), unlike white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width].astype(np.float64)
    channels = []
    for _ in range(3):
        value = np.full((height, width), 128.0)
        for _ in range(3):
            ky, kx = rng.uniform(-1, 1, 2) * 2 * np.pi / 24
            value += 35 * np.sin(ky * y + kx * x + rng.uniform(0, 2 * np.pi))
        channels.append(value)
    return np.clip(np.stack(channels, -1), 0, 255).round().astype(np.uint8)


def reference_paste(source, crop, region, box):
    """Per-pixel loop: the written-out formula of the module docstring."""
    x0, y0, side = box
    size = crop.shape[0]
    out = source.copy()
    values = np.concatenate([crop.astype(np.float64), region[..., None].astype(np.float64)], -1)

    def sample(cy, cx):
        iy, ix = int(np.floor(cy)), int(np.floor(cx))
        wy, wx = cy - iy, cx - ix
        at = lambda a, b: values[min(max(a, 0), size - 1), min(max(b, 0), size - 1)]  # noqa: E731
        return ((1 - wy) * ((1 - wx) * at(iy, ix) + wx * at(iy, ix + 1))
                + wy * ((1 - wx) * at(iy + 1, ix) + wx * at(iy + 1, ix + 1)))

    for py in range(source.shape[0]):
        for px in range(source.shape[1]):
            if not (x0 <= px + 0.5 < x0 + side and y0 <= py + 0.5 < y0 + side):
                continue
            value = sample((py + 0.5 - y0) * size / side - 0.5, (px + 0.5 - x0) * size / side - 0.5)
            m = value[3]
            if m > 0:
                out[py, px] = np.clip(np.rint(source[py, px] * (1 - m) + value[:3] * m), 0, 255)
    return out


@pytest.mark.parametrize("box", [INSIDE, OUTSIDE, SMALL])
def test_matches_per_pixel_reference(box):
    source = smooth_frame(0, 24, 40)
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    region = feather(rng.random((16, 16)) > 0.3, 2)
    scaled = (box[0] / 4, box[1] / 4, box[2] / 4)
    got = paste_back(source, crop, region, scaled)
    want = reference_paste(source, crop, region, scaled)
    # float32 vs float64 arithmetic may round a .5 differently: at most one level.
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("box", [INSIDE, OUTSIDE, SMALL])
def test_round_trip_through_crop_frame(box):
    """crop_frame(paste_back(src, crop, 1)) == crop up to two bilinear resamplings.

    The crop is a DIFFERENT image from the source, so the check sees the pasted pixels, not
    the source showing through. Crop pixels within two pixels of the box edge are skipped:
    crop_frame's filter there reaches source pixels outside the box (PIL's support is
    max(1, side / S) source pixels), which paste_back rightly left alone. Tolerance: for
    band-limited content (wavelength >= 24 crop px, amplitude <= 105 levels) linear
    interpolation errs by at most |f''| h^2 / 8 ~ 105 (2 pi / 24)^2 / 8 ~ 1 level per
    resampling (~2 for SMALL, where paste_back shrinks the crop to 0.65x and the
    wavelength to ~16 source px), plus uint8 rounding twice: max 4 levels, mean < 1
    (measured: max 2-3, mean 0.3-0.6)."""
    source = smooth_frame(0)
    crop = smooth_frame(1, SIZE, SIZE)
    pasted = paste_back(source, crop, np.ones((SIZE, SIZE)), box)
    again = crop_frame(pasted, np.array(box), SIZE).astype(int)
    x0, y0, side = box
    # Crop pixels whose centres map inside the frame (the rest were zero padding).
    centres = (np.arange(SIZE) + 0.5) * side / SIZE
    rows = (y0 + centres > 2 * side / SIZE) & (y0 + centres < HEIGHT - 2 * side / SIZE)
    cols = (x0 + centres > 2 * side / SIZE) & (x0 + centres < WIDTH - 2 * side / SIZE)
    keep = np.zeros((SIZE, SIZE), bool)
    keep[2:-2, 2:-2] = True
    keep &= rows[:, None] & cols[None, :]
    error = np.abs(again - crop.astype(int))[keep]
    assert keep.sum() > 0.3 * SIZE * SIZE
    assert error.mean() < 1.0 and error.max() <= 4, (error.mean(), error.max())


@pytest.mark.parametrize("box", [INSIDE, OUTSIDE])
def test_outside_the_region_is_exactly_the_source(box):
    source = smooth_frame(2)
    crop = np.full((SIZE, SIZE, 3), 255, np.uint8)
    region = np.zeros((SIZE, SIZE), np.float32)
    region[20:44, 16:40] = 1.0
    region = feather(region, 4)
    out = paste_back(source, crop, region, box)
    top, bottom, left, right = box_window(box, WIDTH, HEIGHT)
    # Where the (resampled) region has no weight, not even one level may change: outside
    # the region's footprint in the frame, computed geometrically, and outside the box.
    x0, y0, side = box
    footprint = np.zeros((HEIGHT, WIDTH), bool)
    fy = (np.arange(HEIGHT) + 0.5 - y0) * SIZE / side - 0.5
    fx = (np.arange(WIDTH) + 0.5 - x0) * SIZE / side - 0.5
    footprint[np.ix_((fy > 19) & (fy < 44), (fx > 15) & (fx < 40))] = True
    changed = np.any(out != source, axis=-1)
    assert changed.any()
    assert not (changed & ~footprint).any()
    outside_box = np.ones((HEIGHT, WIDTH), bool)
    outside_box[top:bottom, left:right] = False
    np.testing.assert_array_equal(out[outside_box], source[outside_box])


@pytest.mark.parametrize("box", [INSIDE, OUTSIDE])
def test_zero_region_is_identity(box):
    source = smooth_frame(3)
    crop = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)   # float [0, 1]
    out = paste_back(source, crop, np.zeros((SIZE, SIZE)), box)
    np.testing.assert_array_equal(out, source)


def test_full_region_inside_the_box_is_the_crop():
    """A constant crop pasted with region 1 gives exactly that colour at every pixel whose
    centre is inside the box (and the box window is where the box meets the frame)."""
    source = smooth_frame(4)
    crop = np.full((SIZE, SIZE, 3), (10, 200, 90), np.uint8)
    out = paste_back(source, crop, np.ones((SIZE, SIZE)), OUTSIDE)
    top, bottom, left, right = box_window(OUTSIDE, WIDTH, HEIGHT)
    assert (top, left) == (30, 0) and bottom == HEIGHT and right == 77   # centres in [x0, x0+side)
    assert (out[top:bottom, left:right] == (10, 200, 90)).all()
    assert (out[:top] == source[:top]).all() and (out[:, right:] == source[:, right:]).all()


def test_box_entirely_outside_the_frame_changes_nothing():
    source = smooth_frame(5)
    out = paste_back(source, np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((SIZE, SIZE)), (WIDTH + 5, 0, 50))
    np.testing.assert_array_equal(out, source)


def test_feather_ramps_inside_the_region_only():
    region = np.zeros((32, 32), np.float32)
    region[8:24, 4:28] = 1
    soft = feather(region, 3)
    assert soft.dtype == np.float32
    assert (soft[region == 0] == 0).all()                       # never grows the region
    assert soft[16, 16] == 1.0 and 0 < soft[8, 16] < 0.5         # centre full, edge faint
    assert np.all(np.diff(soft[8:16, 16]) >= 0)                  # monotone ramp inwards
    full = feather(np.ones((32, 32)), 3)                         # the crop border is an edge
    assert full[0, 16] < 0.5 and full[16, 16] == 1.0
    np.testing.assert_array_equal(feather(region, 0), region)


def test_bad_shapes_are_refused():
    source = smooth_frame(6)
    with pytest.raises(ValueError, match="region"):
        paste_back(source, np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((SIZE, SIZE + 1)), INSIDE)
    with pytest.raises(ValueError, match="source"):
        paste_back(source[..., 0], np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((SIZE, SIZE)), INSIDE)
