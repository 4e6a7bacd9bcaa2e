"""Load FLAME files: model pickle (2020 generic_model.pkl, flame2023.pkl, FLAME_NEUTRAL.pkl),
landmark embeddings, UV layout and region masks, with clear errors for bad files."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npformat

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.flame.model import FlameModel, model_from_arrays
from flashtalker_jax.flame.safe_pickle import SafeUnpickler, safe_load_pickle, to_numpy

MODEL_NAMES = ("generic_model.pkl", "flame2023.pkl", "FLAME_NEUTRAL.pkl")
STATIC_EMBEDDING = "flame_static_embedding.pkl"
DYNAMIC_EMBEDDING = "flame_dynamic_embedding.npy"
TEXTURE = "FLAME_texture.npz"
MASKS = "FLAME_masks.pkl"
N_SHAPE_FILE = 300  # every FLAME release stores 300 shape columns before the expressions


def find_model_file(path) -> Path:
    """The model pickle for a file path or a folder holding flame/<name> or <name>."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for folder in (path / "flame", path):
            for name in MODEL_NAMES:
                if (folder / name).is_file():
                    return folder / name
        raise ModelFileError(path, f"no FLAME model found (looked for {', '.join(MODEL_NAMES)} "
                             "here and under flame/)",
                             "run `flashtalker head synth --out DIR` for the procedural head")
    raise ModelFileError(path, "does not exist")


def _require(arrays: dict, key: str, path, ndim: int) -> np.ndarray:
    if key not in arrays:
        raise ModelFileError(path, f"missing key '{key}'")
    value = np.asarray(arrays[key])
    if value.ndim != ndim:
        raise ModelFileError(path, f"key '{key}' has shape {value.shape}, expected {ndim} dims")
    return value


def _expect(path, key: str, value: np.ndarray, shape: tuple):
    if value.shape != shape:
        raise ModelFileError(path, f"key '{key}' has shape {value.shape}, expected {shape}")


def validate_flame_arrays(raw: dict, path) -> dict:
    """Check keys and shapes of a FLAME model dict; return float64/int numpy arrays."""
    if not isinstance(raw, dict):
        raise ModelFileError(path, f"holds a {type(raw).__name__}, expected a dict of arrays")
    v = _require(raw, "v_template", path, 2)
    V = v.shape[0]
    _expect(path, "v_template", v, (V, 3))
    kintree = _require(raw, "kintree_table", path, 2)
    J = kintree.shape[1]
    _expect(path, "kintree_table", kintree, (2, J))
    faces = _require(raw, "f", path, 2)
    _expect(path, "f", faces, (faces.shape[0], 3))
    if faces.min() < 0 or faces.max() >= V:
        raise ModelFileError(path, f"key 'f' indexes vertices outside 0..{V - 1}")
    shapedirs = _require(raw, "shapedirs", path, 3)
    K = shapedirs.shape[2]
    _expect(path, "shapedirs", shapedirs, (V, 3, K))
    if K <= N_SHAPE_FILE:
        raise ModelFileError(path, f"key 'shapedirs' has shape {shapedirs.shape}: expected "
                             f"{N_SHAPE_FILE} shape plus expression columns")
    posedirs = _require(raw, "posedirs", path, 3)
    _expect(path, "posedirs", posedirs, (V, 3, 9 * (J - 1)))
    regressor = _require(raw, "J_regressor", path, 2)
    _expect(path, "J_regressor", regressor, (J, V))
    weights = _require(raw, "weights", path, 2)
    _expect(path, "weights", weights, (V, J))
    return {"v_template": v.astype(np.float64), "f": faces.astype(np.int64),
            "shapedirs": shapedirs.astype(np.float64), "posedirs": posedirs.astype(np.float64),
            "J_regressor": regressor.astype(np.float64), "weights": weights.astype(np.float64),
            "kintree_table": kintree.astype(np.int64), "n_shape": N_SHAPE_FILE}


def load_landmark_embeddings(folder: Path, n_faces: int) -> dict:
    """Static (51) and, when present, dynamic (79 x 17) embeddings from `folder`."""
    out = {"lmk_faces_idx": np.zeros((0,), np.int64), "lmk_bary_coords": np.zeros((0, 3))}
    static_path = folder / STATIC_EMBEDDING
    if static_path.is_file():
        emb = safe_load_pickle(static_path)
        idx = _require(emb, "lmk_face_idx", static_path, 1).astype(np.int64)
        bary = _require(emb, "lmk_b_coords", static_path, 2)
        _expect(static_path, "lmk_b_coords", bary, (idx.shape[0], 3))
        _check_face_ids(static_path, "lmk_face_idx", idx, n_faces)
        out.update(lmk_faces_idx=idx, lmk_bary_coords=bary.astype(np.float64))
    dynamic_path = folder / DYNAMIC_EMBEDDING
    if dynamic_path.is_file():
        emb = _load_npy_dict(dynamic_path)
        idx = _require(emb, "lmk_face_idx", dynamic_path, 2).astype(np.int64)
        bary = _require(emb, "lmk_b_coords", dynamic_path, 3)
        _expect(dynamic_path, "lmk_b_coords", bary, idx.shape + (3,))
        _check_face_ids(dynamic_path, "lmk_face_idx", idx, n_faces)
        out.update(dynamic_lmk_faces_idx=idx, dynamic_lmk_bary_coords=bary.astype(np.float64))
    return out


def _check_face_ids(path, key, idx, n_faces):
    if idx.size and (idx.min() < 0 or idx.max() >= n_faces):
        raise ModelFileError(path, f"key '{key}' indexes faces outside 0..{n_faces - 1}")


def _load_npy_dict(path: Path) -> dict:
    """flame_dynamic_embedding.npy: a pickled dict inside .npy, read via the safe unpickler."""
    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            read_header = (npformat.read_array_header_1_0 if version == (1, 0)
                           else npformat.read_array_header_2_0)
            _, _, dtype = read_header(fh)
            payload = fh.read()
    except (OSError, ValueError) as exc:
        raise ModelFileError(path, f"not a readable .npy file: {exc}") from None
    if dtype != np.dtype(object):
        raise ModelFileError(path, f"holds a {dtype} array, expected a pickled dict")
    try:
        value = SafeUnpickler(io.BytesIO(payload), encoding="latin1").load()
        value = to_numpy(value.item() if isinstance(value, np.ndarray) and value.shape == ()
                         else value)
    except (pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise ModelFileError(path, f"unsafe or corrupt pickle: {exc}") from None
    if not isinstance(value, dict):
        raise ModelFileError(path, f"holds {type(value).__name__}, expected a dict")
    return value


def load_flame_arrays(path, *, with_teeth: bool = False) -> dict:
    """Validated numpy arrays of a FLAME model plus its landmark embeddings (and teeth)."""
    model_path = find_model_file(path)
    arrays = validate_flame_arrays(safe_load_pickle(model_path), model_path)
    _remember_template(model_path, arrays["v_template"])
    arrays.update(load_landmark_embeddings(model_path.parent, arrays["f"].shape[0]))
    if with_teeth:
        from flashtalker_jax.flame.teeth import RING_MASKS, add_teeth, lip_rings
        n_vertices = arrays["v_template"].shape[0]
        rings = lip_rings(model_path.parent, n_vertices)
        for name, ids in zip(RING_MASKS, rings):
            _check_vertex_ids(model_path.parent / MASKS, name, ids, n_vertices)
        arrays = add_teeth(arrays, *rings)
    return arrays


def _check_vertex_ids(path, region: str, ids: np.ndarray, n_vertices: int) -> None:
    bad = ids[(ids < 0) | (ids >= n_vertices)]
    if bad.size:
        raise ModelFileError(path, f"region '{region}' has vertex id {bad[0]}, outside 0..{n_vertices - 1} "
                                   f"(the model has {n_vertices} vertices; {bad.size} bad ids)",
                             "the masks belong to another FLAME topology: use the release's FLAME_masks.pkl")


def load_flame_model(path, *, with_teeth: bool = False, dtype=jnp.float32,
                     n_shape: int | None = None, n_expr: int | None = None) -> FlameModel:
    """Load a FLAME model as a FlameModel pytree.

    path: the model pickle, or a folder holding flame/generic_model.pkl (or generic_model.pkl,
    flame2023.pkl, FLAME_NEUTRAL.pkl). Landmark embeddings are read from the pickle's folder
    when present (otherwise the model has 0 landmarks). with_teeth adds the GaussianAvatars
    teeth (needs lip rings: FLAME_masks.pkl entries or the FLAME 2020 topology).
    n_shape / n_expr keep only the first components (default: all in the file).
    """
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("a float64 FLAME model needs 64-bit JAX: wrap the call in "
                         "`with jax.enable_x64(True):` or set JAX_ENABLE_X64=1")
    model = model_from_arrays(load_flame_arrays(path, with_teeth=with_teeth), dtype=dtype)
    return model.truncated(n_shape, n_expr)


def load_uv_layout(path, *, with_teeth: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """UV layout: vt (T, 2) in [0, 1] (v up, like FLAME_texture.npz) and ft (F, 3) int.

    path: FLAME_texture.npz, a Wavefront .obj with vt and f v/vt lines, or a folder holding
    flame/FLAME_texture.npz or FLAME_texture.npz. with_teeth appends the teeth chart and
    faces (in the order load_flame_model(with_teeth=True) appends the teeth faces).
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "flame" / TEXTURE, path / TEXTURE):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ModelFileError(path, f"no {TEXTURE} here or under flame/")
    if not path.is_file():
        raise ModelFileError(path, "does not exist")
    if path.suffix == ".obj":
        vt, ft = _read_obj_uv(path)
    else:
        try:
            with np.load(path, allow_pickle=False) as data:
                if "vt" not in data or "ft" not in data:
                    raise ModelFileError(path, f"missing key '{'vt' if 'vt' not in data else 'ft'}'")
                vt, ft = np.asarray(data["vt"]), np.asarray(data["ft"])
        except (OSError, ValueError) as exc:
            raise ModelFileError(path, f"not a readable .npz file: {exc}") from None
    if vt.ndim != 2 or vt.shape[1] != 2:
        raise ModelFileError(path, f"key 'vt' has shape {vt.shape}, expected (T, 2)")
    if ft.ndim != 2 or ft.shape[1] != 3:
        raise ModelFileError(path, f"key 'ft' has shape {ft.shape}, expected (F, 3)")
    if ft.min() < 0 or ft.max() >= vt.shape[0]:
        raise ModelFileError(path, f"key 'ft' indexes outside 0..{vt.shape[0] - 1}")
    vt, ft = vt.astype(np.float32), ft.astype(np.int32)
    if with_teeth:
        from flashtalker_jax.flame.teeth import add_teeth_uv
        vt, ft = add_teeth_uv(vt, ft)
    return vt, ft


def _read_obj_uv(path: Path):
    vt, ft = [], []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "vt":
            vt.append([float(parts[1]), float(parts[2])])
        elif parts[0] == "f":
            corners = [p.split("/") for p in parts[1:]]
            if any(len(c) < 2 or not c[1] for c in corners):
                raise ModelFileError(path, "a face has no texture indices (need f v/vt ...)")
            ids = [int(c[1]) - 1 for c in corners]
            ft.extend([ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1))
    if not vt or not ft:
        raise ModelFileError(path, "no 'vt' or no 'f' lines: not a textured .obj")
    return np.asarray(vt), np.asarray(ft)


def derive_face_halves(masks: dict, v_template: np.ndarray) -> dict:
    """upper_face / lower_face: 'face' vertices above / at-or-below the horizontal plane
    (constant y) through the nose tip, the 'nose' vertex with the largest z (FLAME faces +z).
    Compared in float32, so the pickle's float64 template and a loaded FlameModel's float32
    one (flame_template) give the same halves."""
    face = np.asarray(masks["face"])
    nose = np.asarray(masks["nose"])
    v_template = np.asarray(v_template, np.float32)
    tip_y = v_template[nose[np.argmax(v_template[nose, 2])], 1]
    above = v_template[face, 1] > tip_y
    return {"upper_face": face[above], "lower_face": face[~above]}


# v_template of each model pickle read, by file version (resolved path, mtime, size): masks
# beside a model need it, and a real FLAME pickle is too large to read twice.
_TEMPLATES: dict[tuple[str, int, int], np.ndarray] = {}
_TEMPLATES_KEPT = 8


def _file_version(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _remember_template(model_path: Path, v_template: np.ndarray) -> None:
    template = np.array(v_template)
    template.flags.writeable = False  # shared by every later reader
    _TEMPLATES[_file_version(model_path)] = template
    while len(_TEMPLATES) > _TEMPLATES_KEPT:
        del _TEMPLATES[next(iter(_TEMPLATES))]


def _template_beside(folder: Path) -> np.ndarray | None:
    """v_template of the model pickle in `folder` (None without one), read only when no
    load_flame_arrays call has read this version of it yet."""
    for candidate in (folder / name for name in MODEL_NAMES):
        if candidate.is_file():
            template = _TEMPLATES.get(_file_version(candidate))
            return template if template is not None else load_flame_arrays(candidate)["v_template"]
    return None


def flame_template(model: FlameModel) -> np.ndarray:
    """The FLAME vertices of a model's v_template (the teeth that with_teeth appends after
    them dropped), as load_region_masks(v_template=...) takes them."""
    v_template = np.asarray(model.v_template)
    if model.teeth_upper is None:
        return v_template
    first_tooth = min(int(np.min(model.teeth_upper)), int(np.min(model.teeth_lower)))
    return v_template[:first_tooth]


def _region_ids(path: Path, name: str, value) -> np.ndarray:
    ids = np.asarray(value)
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
        ids = ids.astype(np.int64)
    if ids.dtype.kind not in "iu":
        raise ModelFileError(path, f"region '{name}' is not a list of vertex ids (holds {ids.dtype} "
                                   f"{ids.shape})", "use the FLAME_masks.pkl of the FLAME release")
    return ids.astype(np.int64).reshape(-1)


def load_region_masks(path, v_template: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Region name -> vertex ids (int64), from FLAME_masks.pkl or a folder holding it.

    Adds 'upper_face' and 'lower_face' when the file lacks them (see derive_face_halves);
    that needs the template: `v_template` (the FLAME vertices, flame_template of a loaded
    model: pass it when you have one, so the model pickle is not read again) or the model
    pickle beside the masks. Every id must index a vertex of that template (checked
    whenever one is known), else ModelFileError naming the file and region.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "flame" / MASKS, path / MASKS):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ModelFileError(path, f"no {MASKS} here or under flame/")
    raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise ModelFileError(path, f"holds a {type(raw).__name__}, expected a dict")
    masks = {str(k): _region_ids(path, str(k), v) for k, v in raw.items()}
    halves = "upper_face" in masks and "lower_face" in masks
    if not halves:
        for key in ("face", "nose"):
            if key not in masks:
                raise ModelFileError(path, f"missing key '{key}' (needed for upper/lower_face)")
    if v_template is None:
        v_template = _template_beside(path.parent)
    if v_template is None and not halves:
        raise ModelFileError(path, "has no upper_face/lower_face and no FLAME model is beside it to derive them",
                             f"put the model pickle ({', '.join(MODEL_NAMES)}) beside it")
    if v_template is not None:
        for name, ids in masks.items():
            _check_vertex_ids(path, name, ids, np.asarray(v_template).shape[0])
    if not halves:
        masks.update(derive_face_halves(masks, np.asarray(v_template)))
    return masks

