"""MediaPipe's canonical mesh from the .task bundle and the embedding built from it."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.track import embedding as E
from flashtalker_jax.track.canonical import load_canonical_mesh
from flashtalker_jax.utils.files import sha256_file


def test_canonical_mesh_is_the_face(canonical):
    v = canonical.vertices
    assert v.shape == (468, 3) and canonical.faces.shape == (898, 3) and canonical.faces.max() == 467
    # Metres, frontal, mirror-symmetric: outer eye corners 33 / 263 mirror in x, nose tip (4) in front.
    assert v[33, 0] < 0 < v[263, 0]
    np.testing.assert_allclose(v[33] * [-1, 1, 1], v[263], atol=1e-6)
    assert 0.08 < v[263, 0] - v[33, 0] < 0.1 and v[4, 2] == v[:, 2].max()


def test_canonical_reader_names_a_bad_bundle(tmp_path):
    text = tmp_path / "not_a_bundle.task"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not_a_bundle.task.*canonical face mesh"):
        load_canonical_mesh(text)
    empty = tmp_path / "empty.task"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("face_detector.tflite", b"x")
    with pytest.raises(ModelFileError, match="empty.task"):
        load_canonical_mesh(empty)
    with pytest.raises(ModelFileError, match="not found"):
        load_canonical_mesh(tmp_path / "absent.task")


def _static_points(head):
    data, _ = head
    model, static = data["model"], data["static_embedding"]
    v, f = np.asarray(model["v_template"]), np.asarray(model["f"], np.int64)
    return np.einsum("lki,lk->li", v[f[static["lmk_face_idx"]]], static["lmk_b_coords"])


@pytest.mark.parametrize("ibug", [36, 39, 45, 48, 51, 54])
def test_registration_places_a_held_out_point(canonical, head, ibug):
    """Leave one correspondence out of the registration: the canonical point must still land
    within 4 mm of the head's own landmark (eye and mouth corners, upper-lip centre; measured
    1.7-2.9 mm on the procedural head)."""
    static = _static_points(head)
    row = ibug - 17
    keep = [i for i in range(51) if i != row]
    ids = np.asarray(E.IBUG51_MEDIAPIPE)
    scale, rot, shift = E.umeyama(canonical.vertices[ids[keep]], static[keep])
    moved = canonical.vertices @ (scale * rot).T + shift
    warped = E.thin_plate_warp(moved[ids[keep]], static[keep] - moved[ids[keep]], moved)
    assert np.linalg.norm(warped[ids[row]] - static[row]) < 4e-3


def test_embedding_rows(embedding, head):
    data, _ = head
    faces = np.asarray(data["model"]["f"], np.int64)
    assert embedding.landmark_indices.tolist() == list(range(478))
    bary = embedding.lmk_b_coords
    assert np.all(bary >= -1e-9) and np.allclose(bary.sum(1), 1)
    static = data["static_embedding"]
    for row, point in enumerate(E.IBUG51_MEDIAPIPE):  # correspondences keep the head's embedding
        assert embedding.lmk_face_idx[point] == static["lmk_face_idx"][row]
    for ids, ball in ((E.RIGHT_IRIS, "right_eyeball"), (E.LEFT_IRIS, "left_eyeball")):
        assert np.isin(faces[embedding.lmk_face_idx[list(ids)]], data["masks"][ball]).all()
    eyeballs = np.union1d(data["masks"]["left_eyeball"], data["masks"]["right_eyeball"])
    assert not np.isin(faces[embedding.lmk_face_idx[:468]], eyeballs).all(1).any()


def test_embedding_round_trip_and_checks(embedding, head, tmp_path):
    n_faces = len(head[0]["model"]["f"])
    embedding.save(tmp_path / "e.npz")
    back = E.load_embedding(tmp_path / "e.npz", n_faces)
    np.testing.assert_array_equal(back.lmk_face_idx, embedding.lmk_face_idx)
    with pytest.raises(ModelFileError, match="triangle ids reach"):
        E.load_embedding(tmp_path / "e.npz", 100)
    np.savez(tmp_path / "bad.npz", lmk_face_idx=np.zeros(3, int))
    with pytest.raises(ModelFileError, match="bad.npz.*missing array"):
        E.load_embedding(tmp_path / "bad.npz", n_faces)


def test_closest_point_matches_dense_sampling(seed):
    rng = np.random.default_rng(seed)
    tri = rng.normal(size=(20, 3, 3))
    points = rng.normal(size=(30, 3)) * 2
    face, bary = E.closest_on_triangles(points, tri)
    found = np.einsum("nk,nki->ni", bary, tri[face])
    # Brute force: a fine barycentric grid on every triangle.
    g = np.linspace(0, 1, 201)
    u, v = np.meshgrid(g, g)
    keep = u + v <= 1
    grid = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)
    samples = np.einsum("gk,fki->fgi", grid, tri).reshape(-1, 3)
    brute = np.sqrt(((points[:, None] - samples[None]) ** 2).sum(-1)).min(1)
    ours = np.linalg.norm(found - points, axis=1)
    assert np.all(ours <= brute + 1e-9) and np.all(brute - ours < 0.02)


def test_thin_plate_warp_interpolates_and_umeyama_inverts(seed):
    rng = np.random.default_rng(seed)
    controls = rng.normal(size=(12, 3))
    moved = E.thin_plate_warp(controls, 0.1 * rng.normal(size=(12, 3)), controls, smoothing=0.0)
    disp = moved - controls
    np.testing.assert_allclose(E.thin_plate_warp(controls, disp, controls, 0.0), moved, atol=1e-9)
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    s, r, t = E.umeyama(controls, 1.5 * controls @ rot.T + [1, 2, 3])
    assert s == pytest.approx(1.5) and np.allclose(r, rot) and np.allclose(t, [1, 2, 3])


def test_head_synth_writes_the_embedding_beside_the_head(tmp_path, shared_data, head):
    """The procedural head gets the bundled calibrated embedding (track/bundled.py)."""
    from flashtalker_jax.cli.main import main
    from flashtalker_jax.track.bundled import bundled_embedding

    assert main(["head", "synth", "--out", str(tmp_path), "--landmarker",
                 str(shared_data / "models/face_landmarker.task")]) == 0
    faces = np.asarray(head[0]["model"]["f"], np.int64)
    written = E.load_embedding(tmp_path / "flame" / "mediapipe_landmark_embedding.npz", len(faces))
    shipped = bundled_embedding(faces)
    np.testing.assert_array_equal(written.lmk_face_idx, shipped.lmk_face_idx)
    np.testing.assert_array_equal(written.lmk_b_coords, shipped.lmk_b_coords)


def test_bundled_embedding_checks(tmp_path, head, embedding):
    """Shipped: matches its record and differs from the built one (it was calibrated);
    another topology gets None; a tampered file is refused naming it."""
    import json
    import shutil

    from flashtalker_jax.track import bundled

    faces = np.asarray(head[0]["model"]["f"], np.int64)
    shipped = bundled.bundled_embedding(faces)
    record = json.loads((bundled.FOLDER / bundled.RECORD).read_text())
    assert record["embedding_sha256"] == sha256_file(bundled.FOLDER / bundled.EMBEDDING)
    assert record["rms_px_after"] < record["rms_px_before"]
    assert (shipped.lmk_face_idx != embedding.lmk_face_idx).sum() > 50
    assert bundled.bundled_embedding(faces[:, ::-1]) is None
    assert bundled.bundled_embedding(faces, tmp_path / "absent") is None
    copy = tmp_path / "copy"
    shutil.copytree(bundled.FOLDER, copy)
    with np.load(copy / bundled.EMBEDDING) as raw:
        arrays = dict(raw)
    arrays["lmk_b_coords"] = arrays["lmk_b_coords"][::-1]
    np.savez(copy / bundled.EMBEDDING, **arrays)
    with pytest.raises(ModelFileError, match="procedural_embedding|copy.*checksum"):
        bundled.bundled_embedding(faces, copy)


def test_bundled_embedding_ships_in_the_wheel():
    """The installed distribution (CI installs the wheel) carries the bundle (setup.py package_data)."""
    import importlib.metadata

    files = {str(f) for f in importlib.metadata.distribution("flashtalker-jax").files}
    for name in ("mediapipe_landmark_embedding.npz", "bundle.json"):
        assert f"flashtalker_jax/bundled/procedural_embedding/{name}" in files
