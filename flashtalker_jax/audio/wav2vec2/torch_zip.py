"""Read a torch `state_dict` saved with torch.save (zip format) as numpy, without torch.

A torch >= 1.6 checkpoint is a zip: `<prefix>/data.pkl` pickles the dict, each tensor
refers to a raw little-endian storage file `<prefix>/data/<key>` through a persistent id
('storage', StorageType, key, location, numel). The unpickler here resolves only an
allow-list of globals (tensor rebuild functions, storage dtypes, OrderedDict); any other
global - i.e. any attempt to run code - is refused with ModelFileError.
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np

from flashtalker_jax.errors import ModelFileError

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for torch.<X>Storage inside a persistent id: carries the numpy dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a strided view of the storage, copied to a fresh array."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_unused) -> np.ndarray:
    return data


ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ModelFileError(self.path, f"refusing to load: the pickle references {module}.{name}, "
                                            "which is not a tensor type (it could run code)",
                                 "convert the checkpoint to safetensors") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ModelFileError(self.path, f"unexpected persistent id {pid!r} in data.pkl")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            storage = np.frombuffer(raw, dtype=storage_type.dtype)
            if storage.size != numel:
                raise ModelFileError(self.path, f"storage {key} has {storage.size} elements, pickle says {numel}")
            self.storages[key] = storage
        return self.storages[key]


def _pickle_prefix(archive: zipfile.ZipFile, path: str) -> str:
    names = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(names) != 1:
        raise ModelFileError(path, f"expected one data.pkl in the zip, found {len(names)}")
    return names[0][: -len("data.pkl")]


def _check_byteorder(archive: zipfile.ZipFile, prefix: str, path: str) -> None:
    name = f"{prefix}byteorder"
    if name in archive.namelist() and archive.read(name).strip() != b"little":
        raise ModelFileError(path, "big-endian torch checkpoints are not supported")


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Tensors of a torch.save'd state dict as {name: numpy array}; non-tensor entries dropped."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(path, "not a torch zip checkpoint (legacy pre-1.6 format or corrupt)",
                             "re-save it with a current torch, or convert it to safetensors")
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _pickle_prefix(archive, path)
            _check_byteorder(archive, prefix, path)
            with archive.open(f"{prefix}data.pkl") as file:
                loaded = _SafeUnpickler(file, archive, prefix, path).load()
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ModelFileError(path, f"corrupt torch checkpoint ({exc})") from exc
    if not isinstance(loaded, dict):
        raise ModelFileError(path, f"expected a state dict, found {type(loaded).__name__}")
    return {k: v for k, v in loaded.items() if isinstance(v, np.ndarray)}
