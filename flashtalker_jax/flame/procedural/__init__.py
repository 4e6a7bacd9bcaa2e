"""Procedural FLAME-format head: a believable stand-in for the licensed FLAME files.

`generate_procedural_flame(seed)` builds every array in memory; `write_procedural_flame`
writes them under the real release's file names so the folder loads both here and in
smplx: DIR/flame/{generic_model.pkl, FLAME_NEUTRAL.pkl, flame_static_embedding.pkl,
flame_dynamic_embedding.npy, FLAME_texture.npz, FLAME_masks.pkl}.

Units are metres, +y up, +z forward (the face), +x the subject's left, like FLAME.
Expression components named in EXPR_COMPONENTS are jaw-independent face shapes at full
strength for coefficient 1 (eye_close = 1 closes the lids exactly); the jaw opens with
jaw_pose[0] > 0 (radians about +x).
"""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import scipy.sparse

from flashtalker_jax.flame.procedural.basis import (EXPR_COMPONENTS, N_SHAPE, SHAPE_COMPONENTS,
                                                     expression_basis, pose_basis, shape_basis)
from flashtalker_jax.flame.procedural.layout import (contour_landmarks, joint_regressor,
                                                      region_masks, skinning_weights,
                                                      static_landmarks, uv_layout)
from flashtalker_jax.flame.procedural.rest import build_rest_head
from flashtalker_jax.utils.files import atomic_path

__all__ = ["EXPR_COMPONENTS", "SHAPE_COMPONENTS", "generate_procedural_flame",
           "model_from_generated", "procedural_model", "write_procedural_flame"]

KINTREE_TABLE = np.array([[2 ** 32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64)


def _f32(x: np.ndarray) -> np.ndarray:
    """Round to float32 values stored as float64: smplx casts model arrays through float32,
    so float64 parity needs arrays that survive that cast exactly."""
    return np.asarray(x, np.float32).astype(np.float64)


def generate_procedural_flame(seed: int = 0) -> dict:
    """Every file's content as a dict: {'model', 'static_embedding', 'dynamic_embedding',
    'texture', 'masks'} (numpy arrays; J_regressor as a scipy CSC matrix like FLAME)."""
    rng = np.random.default_rng(seed)
    head = build_rest_head()
    faces = head.faces
    shapedirs = np.concatenate([shape_basis(head, rng), expression_basis(head, rng)], axis=-1)
    regressor = _f32(joint_regressor(head))
    v_template = _f32(head.vertices)
    model = {
        "v_template": v_template, "f": faces.astype(np.uint32),
        "shapedirs": _f32(shapedirs), "posedirs": _f32(pose_basis(head, rng)),
        "J_regressor": scipy.sparse.csc_matrix(regressor), "J": regressor @ v_template,
        "weights": _f32(skinning_weights(head)), "kintree_table": KINTREE_TABLE,
        "bs_style": "lbs", "bs_type": "lrotmin",
    }
    lmk_idx, lmk_bary = static_landmarks(head, faces)
    dyn_idx, dyn_bary = contour_landmarks(head, faces)
    vt, ft = uv_layout(head, faces)
    return {
        "model": model,
        "static_embedding": {"lmk_face_idx": lmk_idx.astype(np.int64),
                             "lmk_b_coords": _f32(lmk_bary)},
        "dynamic_embedding": {"lmk_face_idx": dyn_idx.astype(np.int64),
                              "lmk_b_coords": _f32(dyn_bary)},
        "texture": {"vt": vt.astype(np.float64), "ft": ft.astype(np.int64)},
        "masks": region_masks(head),
    }


def _write_pickle(path: Path, obj) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def _link_or_copy(source: Path, target: Path) -> None:
    """Give `target` the content of `source`: a hard link (the model pickle is ~76 MB), else a copy."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # filesystems without hard links
            shutil.copyfile(source, tmp)


def write_procedural_flame(out_dir, seed: int = 0) -> Path:
    """Write the procedural head under out_dir/flame/ with FLAME's file names; return that folder."""
    folder = Path(out_dir) / "flame"
    folder.mkdir(parents=True, exist_ok=True)
    data = generate_procedural_flame(seed)
    _write_pickle(folder / "generic_model.pkl", data["model"])
    _link_or_copy(folder / "generic_model.pkl", folder / "FLAME_NEUTRAL.pkl")
    _write_pickle(folder / "flame_static_embedding.pkl", data["static_embedding"])
    _write_pickle(folder / "FLAME_masks.pkl", data["masks"])
    with atomic_path(folder / "flame_dynamic_embedding.npy") as tmp:
        np.save(tmp, np.array(data["dynamic_embedding"], dtype=object), allow_pickle=True)
    with atomic_path(folder / "FLAME_texture.npz") as tmp:
        np.savez(tmp, **data["texture"])
    return folder


def procedural_model(seed: int = 0, dtype=None, *, with_teeth: bool = False):
    """The procedural head as a FlameModel, built in memory (no files)."""
    return model_from_generated(generate_procedural_flame(seed), dtype, with_teeth=with_teeth)


def model_from_generated(data: dict, dtype=None, *, with_teeth: bool = False):
    """FlameModel from generate_procedural_flame's dict."""
    import jax.numpy as jnp

    from flashtalker_jax.flame.model import model_from_arrays
    from flashtalker_jax.flame.teeth import add_teeth

    arrays = dict(data["model"], n_shape=N_SHAPE)
    arrays["J_regressor"] = arrays["J_regressor"].toarray()
    arrays["lmk_faces_idx"] = data["static_embedding"]["lmk_face_idx"]
    arrays["lmk_bary_coords"] = data["static_embedding"]["lmk_b_coords"]
    arrays["dynamic_lmk_faces_idx"] = data["dynamic_embedding"]["lmk_face_idx"]
    arrays["dynamic_lmk_bary_coords"] = data["dynamic_embedding"]["lmk_b_coords"]
    if with_teeth:
        masks = data["masks"]
        arrays = add_teeth(arrays, masks["lip_outside_ring_upper"], masks["lip_outside_ring_lower"])
    return model_from_arrays(arrays, dtype=jnp.float32 if dtype is None else dtype)
