"""Loader: chumpy-style and sparse pickles, refusal of code-running pickles, clear errors."""
from __future__ import annotations

import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.flame import load_flame_model, load_region_masks, load_uv_layout
from flashtalker_jax.flame.loader import find_model_file
from flashtalker_jax.flame.safe_pickle import safe_load_pickle


def _tiny_model(V=6, J=5, K=310) -> dict:
    rng = np.random.default_rng(0)
    return {"v_template": rng.normal(size=(V, 3)), "f": np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]]),
            "shapedirs": rng.normal(size=(V, 3, K)), "posedirs": rng.normal(size=(V, 3, 9 * (J - 1))),
            "J_regressor": scipy.sparse.csr_matrix(np.eye(J, V)),
            "weights": np.full((V, J), 1.0 / J),
            "kintree_table": np.array([[2 ** 32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]])}


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A stand-in `chumpy.ch.Ch` so pickles reference chumpy exactly like FLAME 2020's."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    return Ch


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_pickle_round_trip(tmp_path, fake_chumpy, protocol):
    arrays = _tiny_model()
    pickled = dict(arrays)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        pickled[key] = fake_chumpy(arrays[key])
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(pickled, protocol=protocol))
    loaded = safe_load_pickle(path)
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        np.testing.assert_array_equal(loaded[key], arrays[key])
    np.testing.assert_array_equal(loaded["J_regressor"], arrays["J_regressor"].toarray())
    model = load_flame_model(path)
    assert model.n_shape == 300 and model.n_expr == 10 and model.lmk_faces_idx.shape == (0,)


def test_float64_load(tmp_path):
    path = tmp_path / "generic_model.pkl"
    arrays = _tiny_model()
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ValueError, match="64-bit JAX"):
        load_flame_model(path, dtype=jnp.float64)
    with jax.enable_x64(True):
        model = load_flame_model(path, dtype=jnp.float64)
        assert model.v_template.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(model.v_template), arrays["v_template"])


@pytest.mark.parametrize("sparse", [scipy.sparse.csc_matrix, scipy.sparse.csr_matrix,
                                    scipy.sparse.coo_matrix])
def test_sparse_regressor(tmp_path, sparse):
    arrays = _tiny_model()
    dense = np.random.default_rng(1).random((5, 6)) * (np.random.default_rng(2).random((5, 6)) > 0.5)
    arrays["J_regressor"] = sparse(dense)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    np.testing.assert_allclose(np.asarray(load_flame_model(path).J_regressor), dense, rtol=1e-6)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


class _ExploitOs:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("exploit", [_Exploit, _ExploitOs])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, exploit):
    marker = tmp_path / "ran"
    arrays = _tiny_model()
    arrays["v_template"] = exploit(marker)
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ModelFileError, match="refusing global"):
        load_flame_model(path)
    assert not marker.exists()


def test_reconstructor_only_builds_stand_ins(tmp_path):
    # protocol 0 path: copyreg._reconstructor with a class that is not a stand-in
    payload = b"ccopy_reg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR."
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(ModelFileError, match="refusing to reconstruct"):
        safe_load_pickle(path)


@pytest.mark.parametrize("key,bad,message", [
    ("posedirs", np.zeros((6, 3, 35)), r"'posedirs' has shape \(6, 3, 35\), expected \(6, 3, 36\)"),
    ("weights", np.zeros((6, 4)), r"'weights' has shape \(6, 4\), expected \(6, 5\)"),
    ("shapedirs", np.zeros((6, 3, 20)), r"'shapedirs' has shape \(6, 3, 20\)"),
    ("f", np.array([[0, 1, 9]]), r"'f' indexes vertices outside"),
    ("weights", None, r"missing key 'weights'"),
])
def test_bad_model_files_name_the_key(tmp_path, key, bad, message):
    arrays = _tiny_model()
    if bad is None:
        del arrays[key]
    else:
        arrays[key] = bad
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ModelFileError, match=message) as info:
        load_flame_model(path)
    assert "generic_model.pkl" in str(info.value)


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no FLAME model found"):
        load_flame_model(tmp_path)


def test_folder_layouts_and_smplx_name(flame_dir, flame_model):
    assert find_model_file(flame_dir.parent) == flame_dir / "generic_model.pkl"
    assert find_model_file(flame_dir) == flame_dir / "generic_model.pkl"
    model = load_flame_model(flame_dir / "FLAME_NEUTRAL.pkl", n_shape=20, n_expr=7)
    assert (model.n_shape, model.n_expr) == (20, 7)
    assert model.lmk_faces_idx.shape == (51,) and model.dynamic_lmk_faces_idx.shape == (79, 17)
    np.testing.assert_array_equal(model.expr_dirs, flame_model.expr_dirs[..., :7])


def test_uv_layout_npz_and_obj(flame_dir, flame_model, tmp_path):
    vt, ft = load_uv_layout(flame_dir.parent)
    assert ft.shape == flame_model.faces.shape and vt.min() >= 0 and vt.max() <= 1
    obj = tmp_path / "head.obj"
    lines = [f"vt {u} {v}" for u, v in vt] + [f"f 1/{a + 1} 1/{b + 1} 1/{c + 1}" for a, b, c in ft]
    obj.write_text("\n".join(lines))
    vt2, ft2 = load_uv_layout(obj)
    np.testing.assert_allclose(vt2, vt, atol=1e-6)
    np.testing.assert_array_equal(ft2, ft)
    bad = tmp_path / "bad.npz"
    np.savez(bad, vt=vt)
    with pytest.raises(ModelFileError, match="missing key 'ft'"):
        load_uv_layout(bad)


def test_region_masks_derive_face_halves(flame_dir, tmp_path):
    masks = load_region_masks(flame_dir)
    expected = {"lips", "eye_region", "left_eye_region", "right_eye_region", "forehead", "nose",
                "neck", "scalp", "face", "left_eyeball", "right_eyeball", "boundary",
                "left_ear", "right_ear", "upper_face", "lower_face"}
    assert expected <= set(masks)
    stripped = {k: v for k, v in masks.items() if k not in ("upper_face", "lower_face")}
    (tmp_path / "FLAME_masks.pkl").write_bytes(pickle.dumps(stripped))
    (tmp_path / "generic_model.pkl").symlink_to(flame_dir / "generic_model.pkl")
    derived = load_region_masks(tmp_path)
    np.testing.assert_array_equal(derived["upper_face"], masks["upper_face"])
    np.testing.assert_array_equal(derived["lower_face"], masks["lower_face"])


@pytest.mark.parametrize("bad,found", [(10 ** 6, "1000000"), (-1, "-1")])
def test_region_mask_ids_outside_the_mesh_name_the_file_and_region(flame_dir, flame_model, tmp_path, bad, found):
    masks = load_region_masks(flame_dir)
    V = flame_model.n_vertices
    broken = dict(masks)
    broken["lips"] = np.append(masks["lips"], bad)
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(pickle.dumps(broken))
    (tmp_path / "generic_model.pkl").symlink_to(flame_dir / "generic_model.pkl")
    message = rf"FLAME_masks\.pkl: region 'lips' has vertex id {found}, outside 0\.\.{V - 1}"
    with pytest.raises(ModelFileError, match=message):
        load_region_masks(tmp_path)                                  # V from the model beside
    with pytest.raises(ModelFileError, match=message):
        load_region_masks(path, v_template=np.zeros((V, 3)))         # V from the template given


def test_region_mask_that_is_not_ids_is_named(tmp_path):
    path = tmp_path / "FLAME_masks.pkl"
    path.write_bytes(pickle.dumps({"face": np.arange(3), "nose": np.arange(2), "lips": "upper lip",
                                   "upper_face": np.arange(2), "lower_face": np.arange(1)}))
    with pytest.raises(ModelFileError, match=r"FLAME_masks\.pkl: region 'lips' is not a list of vertex ids"):
        load_region_masks(path, v_template=np.zeros((6, 3)))


def test_vhap_reader_and_loader_agree_on_the_shape_width():
    from flashtalker_jax.data.vhap import MAX_SHAPE
    from flashtalker_jax.flame.loader import N_SHAPE_FILE

    assert MAX_SHAPE == N_SHAPE_FILE


def test_lip_ring_ids_outside_the_mesh_are_refused_before_building_teeth(flame_dir, flame_model, tmp_path):
    masks = safe_load_pickle(flame_dir / "FLAME_masks.pkl")
    masks["lip_outside_ring_lower"] = np.append(np.asarray(masks["lip_outside_ring_lower"]), 99999)
    (tmp_path / "FLAME_masks.pkl").write_bytes(pickle.dumps({k: np.asarray(v) for k, v in masks.items()}))
    (tmp_path / "generic_model.pkl").symlink_to(flame_dir / "generic_model.pkl")
    with pytest.raises(ModelFileError, match=r"FLAME_masks\.pkl: region 'lip_outside_ring_lower' has vertex id "
                                             rf"99999, outside 0\.\.{flame_model.n_vertices - 1}"):
        load_flame_model(tmp_path, with_teeth=True)
