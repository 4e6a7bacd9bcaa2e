"""The ground-truth mesh renderer against analytic expectations on quads.

Tolerances: geometry is computed in float64 and stored as float32, so interpolated
quantities in [0, 1] are compared at 1e-5 (a few float32 ulps at that magnitude).
"""
import numpy as np
import pytest

from flashtalker_jax.data.synth import mesh_render as mr

W = H = 64
K = np.array([[64.0, 0, 32.0], [0, 64.0, 32.0], [0, 0, 1]])
EYE = np.eye(4)


def quad(x0, x1, y0, y1, z0, z1=None):
    """Quad in camera space (OpenCV axes); z varies linearly along x when z1 is given.
    Corner order: top-left, top-right, bottom-right, bottom-left as seen by the camera."""
    z1 = z0 if z1 is None else z1
    vertices = np.array([[x0, y0, z0], [x1, y0, z1], [x1, y1, z1], [x0, y1, z0]], np.float64)
    # Outward normal towards the camera (-z): for face (0, 2, 1),
    # (v2 - v0) x (v1 - v0) = (dx, dy, 0) x (dx, 0, 0) = (0, 0, -dx dy).
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)  # v up: top row v = 1
    return vertices, faces, uv


def test_frontal_quad_covers_exactly_the_pixels_whose_centres_are_inside():
    v, f, _ = quad(-0.5, 0.5, -0.5, 0.5, 2.0)   # projects to [16, 48] x [16, 48] pixels
    frags = mr.rasterize(v, f, K, EYE, W, H)
    expected = np.zeros((H, W), bool)
    expected[16:48, 16:48] = True
    np.testing.assert_array_equal(frags.mask, expected)
    np.testing.assert_allclose(frags.depth[frags.mask], 2.0, rtol=1e-6)
    assert frags.front[frags.mask].all()


def test_orthographic_tilted_quad_has_affine_depth_and_uv():
    """Orthographic (the FLAME preview's camera): coverage ignores depth, and depth and
    barycentrics are affine in screen space."""
    from flashtalker_jax.render.mesh import interpolate, rasterize

    v, f, uv = quad(-0.5, 0.5, -0.5, 0.5, 1.5, 3.5)
    ortho = np.array([[32.0, 0, 32.0], [0, 32.0, 32.0], [0, 0, 1]])  # 32 px per metre
    frags = rasterize(v, f, ortho, EYE, W, H, orthographic=True)
    expected = np.zeros((H, W), bool)
    expected[16:48, 16:48] = True
    np.testing.assert_array_equal(frags.mask, expected)
    assert frags.front[frags.mask].all()
    rows, cols = np.nonzero(frags.mask)
    x = (cols + 0.5 - 32.0) / 32.0
    np.testing.assert_allclose(frags.depth[rows, cols], 1.5 + (x + 0.5) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(interpolate(frags, uv, f)[rows, cols, 0], x + 0.5, atol=1e-5)


def test_reversed_winding_is_seen_from_the_back():
    v, f, _ = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    frags = mr.rasterize(v, f[:, ::-1], K, EYE, W, H)
    assert frags.mask.sum() == 32 * 32 and not frags.front[frags.mask].any()


def test_perspective_correct_uv_on_a_tilted_quad_matches_ray_plane_intersection():
    v, f, uv = quad(-0.6, 0.6, -0.5, 0.5, 1.5, 3.5)   # depth grows from left to right
    frags = mr.rasterize(v, f, K, EYE, W, H)
    got = mr.interpolate(frags, uv, f)
    rows, cols = np.nonzero(frags.mask)
    # Ray through the pixel centre: d = ((c + .5 - cx)/fx, (r + .5 - cy)/fy, 1). The quad is
    # the plane x = x0 + (z - z0) (x1 - x0)/(z1 - z0); solve for the ray parameter t (= z).
    dx, dy = (cols + 0.5 - 32.0) / 64.0, (rows + 0.5 - 32.0) / 64.0
    slope = (0.6 - -0.6) / (3.5 - 1.5)
    t = (-0.6 - 1.5 * slope) / (dx - slope)
    u_true = (t * dx + 0.6) / 1.2
    v_true = 1.0 - (t * dy + 0.5) / 1.0
    np.testing.assert_allclose(got[rows, cols, 0], u_true, atol=1e-5)
    np.testing.assert_allclose(got[rows, cols, 1], v_true, atol=1e-5)
    np.testing.assert_allclose(frags.depth[rows, cols], t, rtol=1e-5)
    # Affine (screen-space) interpolation would be wrong by far more than the tolerance.
    assert np.abs(u_true - (cols + 0.5 - cols.min()) / (cols.max() + 1 - cols.min())).max() > 0.05


def test_texture_mapped_one_texel_per_pixel_is_reproduced_exactly():
    v, f, uv = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    texture = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    shading = mr.Shading(light_dir=(0, 0, -1), ambient=1.0, diffuse=0.0, background=(0, 0, 0),
                         cavity_colour=(0, 0, 0))
    rgb, alpha, _ = mr.render_textured(v, f, uv, f, texture, K, EYE, W, H, shading)
    np.testing.assert_allclose(rgb[16:48, 16:48], texture, atol=1e-5)
    assert (alpha[16:48, 16:48] == 1).all() and alpha.sum() == 32 * 32


def test_nearer_surface_wins_whatever_the_face_order():
    near_v, f, _ = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    far_v, _, _ = quad(-0.25, 1.5, -0.25, 0.75, 3.0)   # pixels [27, 64) x [27, 48)
    vertices = np.concatenate([far_v, near_v])
    for faces in (np.concatenate([f, f + 4]), np.concatenate([f + 4, f])):
        frags = mr.rasterize(vertices, faces, K, EYE, W, H)
        near_face = np.isin(frags.face, np.nonzero(faces.min(1) >= 4)[0])
        assert near_face[16:48, 16:48].all()
        assert frags.mask.sum() == 32 * 32 + 21 * 16
        assert not near_face[27:48, 48:].any() and frags.mask[27:48, 48:].all()
        np.testing.assert_allclose(frags.depth[16:48, 16:48], 2.0, rtol=1e-6)


def test_back_faces_render_as_cavity_and_supersampling_gives_fractional_edges():
    v, f, uv = quad(-0.51, 0.51, -0.5, 0.5, 2.0)      # edges at 15.68 and 48.32 pixels
    texture = np.ones((4, 4, 3), np.float32)
    shading = mr.Shading(light_dir=(0, 0, -1), ambient=1.0, diffuse=0.0, background=(0, 0, 0),
                         cavity_colour=(0.2, 0.1, 0.1))
    rgb, alpha, _ = mr.render_textured(v, f[:, ::-1], uv, f[:, ::-1], texture, K, EYE, W, H,
                                       shading, supersample=4)
    np.testing.assert_allclose(rgb[32, 32], (0.2, 0.1, 0.1), atol=1e-6)
    # Column 15 spans [15, 16]; sub-pixel centres at 15.125..15.875, of which 15.875 is inside.
    assert alpha[32, 15] == pytest.approx(0.25)
    assert alpha[32, 16] == 1.0 and alpha[32, 14] == 0.0


def test_dimmed_back_faces_show_their_albedo_scaled():
    v, f, uv = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    texture = np.full((4, 4, 3), 0.8, np.float32)
    shading = mr.Shading(light_dir=(0, 0, -1), ambient=1.0, diffuse=0.0, background=(0, 0, 0),
                         cavity_colour=(0.2, 0.1, 0.1), dim_back_faces=np.array([True, False]),
                         dim_back_level=0.25)
    rgb, _, frags = mr.render_textured(v, f[:, ::-1], uv, f[:, ::-1], texture, K, EYE, W, H, shading)
    first = frags.face == 0
    np.testing.assert_allclose(rgb[first], 0.2, atol=1e-6)                 # 0.8 x 0.25
    np.testing.assert_allclose(rgb[frags.face == 1], np.broadcast_to((0.2, 0.1, 0.1), rgb[frags.face == 1].shape), atol=1e-6)
