"""Embedding calibration recovers where the 'detector' really reads each point: detections
made from a displaced embedding (grid-aligned, so exactly reachable) on posed meshes of
the procedural head pull the built embedding onto it."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from flashtalker_jax.flame import FlameParams, flame_forward
from flashtalker_jax.track.calibrate import barycentric_grid, calibrate
from flashtalker_jax.track.embedding import LandmarkEmbedding


def test_calibration_finds_the_displaced_points(head, embedding, seed):
    data, model = head
    rng = np.random.default_rng(seed)
    T = 6
    params = FlameParams.zeros(T, 0, 0).replace(rotation=jnp.asarray(rng.normal(0, 0.15, (T, 3)), jnp.float32),
                                                  translation=jnp.tile(jnp.array([[0.0, 0.0, 0.1]]), (T, 1)))
    meshes = np.asarray(flame_forward(model, params).vertices, np.float64)
    faces = np.asarray(data["model"]["f"], np.int64)
    rows = np.arange(0, 468, 7)                         # displaced points: a neighbouring triangle
    grid = barycentric_grid(12)
    truth_idx, truth_b = embedding.lmk_face_idx.copy(), embedding.lmk_b_coords.copy()
    for row in rows:
        neighbours = np.nonzero(np.isin(faces, faces[truth_idx[row]]).sum(1) == 2)[0]
        truth_idx[row], truth_b[row] = neighbours[0], grid[rng.integers(len(grid))]
    true_emb = LandmarkEmbedding(truth_idx, truth_b, embedding.landmark_indices)
    focal = 1200.0

    def project(points):
        cam = points * [1, -1, -1] + [0, 0, 1.0]
        return focal * cam[..., :2] / cam[..., 2:] + 256

    detections = project(true_emb.points(meshes, faces))
    eyes = np.union1d(data["masks"]["left_eyeball"], data["masks"]["right_eyeball"])
    eyeball_faces = np.nonzero(np.isin(faces, eyes).all(1))[0]
    found, stats = calibrate(embedding, np.asarray(data["model"]["v_template"]), faces, eyeball_faces,
                             [meshes], [detections], [project])
    assert stats["rms_px_before"] > 1.0 and stats["rms_px_after"] < 1e-6
    np.testing.assert_allclose(found.points(meshes, faces), true_emb.points(meshes, faces), atol=1e-9)
