"""UV sampling and the avatar on the procedural FLAME head (with GaussianAvatars teeth)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from flashtalker_jax.avatar.avatar import GaussianAvatar, drive_from_flame
from flashtalker_jax.avatar.binding import bound_anchors, local_to_world
from flashtalker_jax.avatar.deform import CrossAttention
from flashtalker_jax.avatar.sampling import LOWER, OTHER, UPPER, build_placement
from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.loader import load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.model import FlameParams

MASKS = dict(upper_masks=("upper_face", "eye_region"), lower_masks=("lower_face", "lips"))


@pytest.fixture(scope="module")
def head(tiny_identity):
    folder = tiny_identity / "flame"
    model = load_flame_model(folder, with_teeth=True, n_expr=10, n_shape=0)
    vt, ft = load_uv_layout(folder)
    return model, vt, ft, load_region_masks(folder)


def placement(head, resolution, teeth=2):
    model, vt, ft, masks = head
    return build_placement("uv", np.asarray(model.v_template), np.asarray(model.faces), vt, ft,
                           masks, uv_resolution=resolution, teeth_per_face=teeth, **MASKS)


def test_uv_count_follows_resolution_and_covers_every_region(head):
    small, large = placement(head, 32), placement(head, 64)
    body_small, body_large = (~small.is_teeth).sum(), (~large.is_teeth).sum()
    assert 3.6 < body_large / body_small < 4.4  # ~coverage * res^2, up to edge effects
    for p in (small, large):
        assert {UPPER, LOWER, OTHER} <= set(np.unique(p.region[~p.is_teeth]))
        assert p.is_teeth.sum() == 2 * (len(head[0].faces) - len(head[2]))


def test_teeth_gaussians_move_with_the_jaw(head):
    model = head[0]
    p = placement(head, 16, teeth=3)
    params = FlameParams.zeros(2, n_shape=0, n_expr=10)
    params = params.replace(jaw_pose=params.jaw_pose.at[1, 0].set(0.3))
    verts = flame_forward(model, params).vertices
    anchors = bound_anchors(verts, model.faces, jnp.asarray(p.face_ids), jnp.asarray(p.barycentrics))
    moved = np.linalg.norm(np.asarray(anchors[1] - anchors[0]), axis=-1)
    teeth_faces = np.asarray(model.faces)[p.face_ids[p.is_teeth]]
    lower_ids = set(np.asarray(model.teeth_lower).tolist())
    on_lower = np.array([all(v in lower_ids for v in f) for f in teeth_faces])
    assert on_lower.any() and (~on_lower).any()
    assert moved[p.is_teeth][on_lower].min() > 1e-3     # lower teeth follow the jaw
    assert moved[p.is_teeth][~on_lower].max() < 1e-6    # upper teeth stay with the skull


def avatar_config():
    return ml_collections.ConfigDict(dict(
        capacity=0, init_scale_factor=0.5, init_opacity=0.9, feature_dim=8, feature_init_std=0.1,
        heads=2, expr_tokens=2, offset_hidden=16, offset_layers=1, color_mlp=True, color_hidden=8,
        offset_scale=0.1, lr_scale=dict(local_means=1.0, local_log_scales=1.0, local_quats=1.0,
                                        opacity_logits=5.0, color_logits=2.0, features=1.0)))


def test_untrained_avatar_is_the_template_bound_to_the_posed_mesh(head):
    model = head[0]
    p = placement(head, 16)
    avatar = GaussianAvatar(p, np.asarray(model.v_template), np.asarray(model.faces), 10, 0,
                            avatar_config(), nnx.Rngs(0))
    rng = np.random.default_rng(0)
    params = FlameParams.zeros(2, n_shape=0, n_expr=10).replace(
        expr=jnp.asarray(rng.normal(size=(2, 10)), jnp.float32),
        jaw_pose=jnp.array([[0.1, 0, 0], [0.2, 0, 0]]))
    verts = flame_forward(model, params).vertices
    g = avatar(verts, model.faces, drive_from_flame(params))
    log_scales = avatar.template("local_log_scales")
    means, scales, _ = local_to_world(verts, model.faces, avatar.face_ids[...],
                                      avatar.barycentrics[...], jnp.zeros_like(log_scales),
                                      log_scales, avatar.template("local_quats"))
    np.testing.assert_allclose(g.means, means, atol=1e-6)  # zero-initialised offsets
    np.testing.assert_allclose(g.scales, scales, rtol=1e-6)
    assert g.means.shape == (2, p.count, 3) and np.all(np.asarray(g.opacities) > 0.5)


def test_regional_attention_ignores_other_regions_tokens():
    attention = CrossAttention(8, 2, nnx.Rngs(0))
    queries = jax.random.normal(jax.random.key(1), (6, 8))
    regions = jnp.array([UPPER, UPPER, LOWER, LOWER, OTHER, OTHER])
    token_regions = jnp.array([UPPER, LOWER, LOWER, OTHER])
    mask = regions[:, None] == token_regions[None, :]
    tokens = jax.random.normal(jax.random.key(2), (1, 4, 8))
    changed = tokens.at[0, 1:3].add(5.0)  # only LOWER tokens change
    a, b = attention(queries, tokens, mask), attention(queries, changed, mask)
    diff = np.abs(np.asarray(a - b)).max(-1)[0]
    np.testing.assert_allclose(diff[[0, 1, 4, 5]], 0.0, atol=1e-6)
    assert diff[[2, 3]].min() > 1e-3
