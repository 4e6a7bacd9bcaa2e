"""Head masks: the person mask above the projected neck-boundary ring."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from flashtalker_jax.config import load_config
from flashtalker_jax.track import fit
from flashtalker_jax.track.head_masks import head_mask, ring_pixels, seam_rows, upper_neck_ids, vertex_embedding


def test_seam_follows_the_ring_lower_edge_and_its_top_beyond():
    theta = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.stack([50 + 20 * np.cos(theta), 80 + 5 * np.sin(theta)], 1)  # ellipse, lower edge y = 85
    rows = seam_rows(ring, 100)
    assert abs(rows[50] - 85) < 0.5 and rows[0] == rows[99] == 75       # beyond the neck: its top row
    person = np.full((120, 100), 255, np.uint8)
    mask = head_mask(person, ring)
    assert mask[:84, 50].all() and not mask[86:, 50].any()
    shoulders = head_mask(person, ring, beyond=60.0)               # beside the neck: above row 60
    assert shoulders[:59, 5].all() and not shoulders[61:, 5].any() and shoulders[84, 50]


def test_ring_pixels_are_the_boundary_vertices_projected(head):
    data, model = head
    boundary = np.asarray(data["masks"]["boundary"])
    emb = vertex_embedding(np.asarray(model.faces), boundary)
    np.testing.assert_allclose(emb.points(np.asarray(model.v_template), np.asarray(model.faces)),
                               np.asarray(model.v_template)[boundary], atol=1e-12)
    cfg = load_config("track").fit
    T = 2
    vars_ = {"shape": np.zeros(10, np.float32), "log_focal": np.float32(np.log(2.0)),
             "rotation": np.zeros((T, 3), np.float32), "translation": np.zeros((T, 3), np.float32),
             "jaw_pose": np.zeros((T, 3), np.float32), "eyes_pose": np.zeros((T, 6), np.float32),
             "expr": np.zeros((T, 10), np.float32)}
    ring = ring_pixels(model, vars_, boundary, cfg, 10, 10, 512)
    direct = np.asarray(fit.project(jnp.asarray(model.v_template)[boundary], jnp.asarray(vars_["log_focal"]),
                                    512, 512, cfg.camera_distance))
    np.testing.assert_allclose(ring[0], direct, atol=1e-3)
    assert (ring[..., 1] > 256).all()          # the neck cut is below the image centre (the head is above)


def test_upper_neck_is_the_top_of_the_neck(head):
    data, model = head
    template = np.asarray(model.v_template)
    neck = np.asarray(data["masks"]["neck"])
    upper = upper_neck_ids(template, neck)
    assert 0 < len(upper) < len(neck)
    assert template[upper, 1].min() > template[np.asarray(data["masks"]["boundary"]), 1].max()
