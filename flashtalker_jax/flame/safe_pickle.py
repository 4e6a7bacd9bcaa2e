"""An allow-list unpickler for FLAME files, so loading a model never runs foreign code.

FLAME pickles hold numpy arrays, scipy sparse matrices (J_regressor) and, in older
releases, chumpy `Ch` objects whose state dict keeps the array under 'x'. Chumpy does not
import on Python >= 3.11, so chumpy and scipy.sparse classes are mapped to inert stand-ins
that only record their state; every global not on the allow-list is refused.
"""
from __future__ import annotations

import io
import pickle

import numpy as np
import scipy.sparse

from flashtalker_jax.errors import ModelFileError

_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 wrap bytes in it
}
# Plain containers found in chumpy objects' state (e.g. the set `_dirty_vars`).
_BUILTINS = {"object": object, "set": set, "frozenset": frozenset, "slice": slice}
_SPARSE_FORMATS = {"csc_matrix": "csc", "csr_matrix": "csr", "coo_matrix": "coo",
                   "csc_array": "csc", "csr_array": "csr", "coo_array": "coo"}


class PickledChumpy:
    """Inert record of a pickled chumpy object; `.x` holds its array."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


class PickledSparse:
    """Inert record of a pickled scipy sparse matrix; converted by `to_numpy`."""

    format = "csc"

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


def _sparse_class(fmt: str) -> type:
    return type(f"Pickled{fmt.upper()}", (PickledSparse,), {"format": fmt})


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to the stand-in classes above."""
    if not (isinstance(cls, type) and issubclass(cls, (PickledChumpy, PickledSparse))
            and base is object):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} from {base!r}")
    return cls.__new__(cls)


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module.split(".")[0] == "chumpy":
            return PickledChumpy
        if module.startswith("scipy.sparse") and name in _SPARSE_FORMATS:
            return _sparse_class(_SPARSE_FORMATS[name])
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: not a numpy, scipy.sparse or chumpy array type")


def to_numpy(obj):
    """Convert the stand-ins (recursively through dicts and lists) to numpy arrays."""
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    if isinstance(obj, PickledChumpy):
        if "x" not in obj.state:
            raise ValueError("a chumpy object without an array 'x' (a chumpy expression)")
        return np.asarray(to_numpy(obj.state["x"]))
    if isinstance(obj, PickledSparse):
        s = obj.state
        shape = tuple(s.get("_shape", s.get("shape")))
        if obj.format == "coo":
            coords = (s["row"], s["col"]) if "row" in s else tuple(s["coords"])
            return scipy.sparse.coo_matrix((s["data"], coords), shape=shape).toarray()
        make = scipy.sparse.csc_matrix if obj.format == "csc" else scipy.sparse.csr_matrix
        return make((s["data"], s["indices"], s["indptr"]), shape=shape).toarray()
    return obj


def safe_load_pickle(path) -> object:
    """Load a pickle file through the allow-list; raise ModelFileError on anything else."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror}") from None
    try:
        raw = SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
        return to_numpy(raw)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(path, f"unsafe or corrupt pickle: {exc}",
                             "only FLAME pickles of numpy/scipy/chumpy arrays are accepted") from None
    except (EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ModelFileError(path, f"corrupt pickle: {exc}") from None
