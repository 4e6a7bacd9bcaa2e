"""UV sampling and per-face placement on a synthetic plane mesh whose UV map is its xy.

The plane is n x n quads (two triangles each) over [0, 1]^2; uv = xy, so every grid point
of the UV map lies in exactly one triangle (or on a shared edge) and the expected counts
and positions can be written down exactly.
"""
import numpy as np
import pytest

from flashtalker_jax.avatar.sampling import LOWER, OTHER, UPPER, build_placement, uv_grid_samples
from flashtalker_jax.errors import ConfigError


def plane(n=6):
    xs = np.linspace(0, 1, n + 1)
    xy = np.stack(np.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    vertices = np.concatenate([xy, np.zeros((len(xy), 1))], 1).astype(np.float32)
    faces = []
    for r in range(n):
        for c in range(n):
            a = r * (n + 1) + c
            faces += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return vertices, np.asarray(faces, np.int32), xy.astype(np.float32)


def masks_for(vertices):
    y = vertices[:, 1]
    return {"top": np.flatnonzero(y > 0.6), "bottom": np.flatnonzero(y < 0.4)}


@pytest.mark.parametrize("resolution", [8, 16, 33])
def test_sample_count_follows_resolution_and_points_sit_on_the_grid(resolution):
    vertices, faces, vt = plane()
    face_ids, bary = uv_grid_samples(vt, faces, resolution)
    assert len(face_ids) == resolution**2  # the plane covers the whole UV square
    np.testing.assert_allclose(bary.sum(1), 1.0, atol=1e-6)
    assert (bary >= -1e-6).all()
    uv = np.einsum("nj,njc->nc", bary, vt[faces[face_ids]])
    grid = (np.stack(np.meshgrid(np.arange(resolution), np.arange(resolution), indexing="xy"), -1)
            .reshape(-1, 2) + 0.5) / resolution
    found = {tuple(np.round(p * resolution - 0.5).astype(int)) for p in uv}
    assert found == {tuple(np.round(p * resolution - 0.5).astype(int)) for p in grid}
    index = uv * resolution - 0.5  # grid indices: integers up to float32 rounding
    np.testing.assert_allclose(index, np.round(index), atol=1e-4)


def test_partial_uv_coverage_scales_the_count():
    vertices, faces, vt = plane(8)
    left = faces[np.all(vt[faces][:, :, 0] <= 0.5 + 1e-6, axis=1)]
    counts = [len(uv_grid_samples(vt, left, r)[0]) for r in (16, 32, 64)]
    # Grid points with u < 0.5 are exactly half: res/2 columns (u = 0.5 is never a centre).
    assert counts == [16 * 8, 32 * 16, 64 * 32]


def test_placement_regions_teeth_and_spacing():
    vertices, faces, vt = plane(6)
    teeth = np.array([[0, 1, 8], [2, 3, 10]], np.int32)  # two extra faces without UVs
    all_faces = np.concatenate([faces, teeth])
    placement = build_placement("uv", vertices, all_faces, vt, faces, masks_for(vertices),
                                uv_resolution=24, teeth_per_face=4, upper_masks=("top",),
                                lower_masks=("bottom", "absent_name"))
    assert set(np.unique(placement.region)) == {UPPER, LOWER, OTHER}
    assert placement.is_teeth.sum() == 8
    assert set(placement.face_ids[placement.is_teeth]) == {len(faces), len(faces) + 1}
    assert (placement.region[placement.is_teeth] == LOWER).all()
    # uv = xy, so the world spacing of a res-24 grid is exactly 1/24 off the teeth.
    np.testing.assert_allclose(placement.spacing[~placement.is_teeth], 1 / 24, rtol=1e-4)
    centroid = placement.barycentrics[placement.is_teeth][0]
    np.testing.assert_allclose(centroid, 1 / 3, atol=1e-6)
    # Upper Gaussians sit at y > 0.5, lower at y < 0.5.
    pos = np.einsum("nj,njc->nc", placement.barycentrics, vertices[all_faces[placement.face_ids]])
    body = ~placement.is_teeth
    assert (pos[body & (placement.region == UPPER), 1] > 0.5).all()
    assert (pos[body & (placement.region == LOWER), 1] < 0.5).all()


def test_per_face_mode_puts_one_gaussian_at_each_centroid():
    vertices, faces, vt = plane(4)
    placement = build_placement("per_face", vertices, faces, vt, faces, masks_for(vertices),
                                uv_resolution=0, teeth_per_face=0, upper_masks=("top",),
                                lower_masks=("bottom",))
    np.testing.assert_array_equal(placement.face_ids, np.arange(len(faces)))
    np.testing.assert_allclose(placement.barycentrics, 1 / 3)


def test_bad_mode_and_missing_masks_are_config_errors():
    vertices, faces, vt = plane(2)
    kwargs = dict(uv_resolution=4, teeth_per_face=0, upper_masks=("top",), lower_masks=("bottom",))
    with pytest.raises(ConfigError, match="placement.mode"):
        build_placement("grid", vertices, faces, vt, faces, masks_for(vertices), **kwargs)
    kwargs["upper_masks"] = ("nope",)
    with pytest.raises(ConfigError, match="upper_masks"):
        build_placement("uv", vertices, faces, vt, faces, masks_for(vertices), **kwargs)
