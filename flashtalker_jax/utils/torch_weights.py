"""Read torch weight files as numpy, without torch and without running code.

Formats:
- torch zip checkpoints (torch >= 1.6; wav2vec2's pytorch_model.bin): `<prefix>/data.pkl`
  pickles the dict, each tensor refers to a raw little-endian storage file
  `<prefix>/data/<key>` through a persistent id ('storage', StorageType, key, location, numel);
- the legacy pre-1.6 torch.save format (the LPIPS linear layers and torchvision's VGG16
  weights still use it): pickles of the magic number, the protocol version and system info,
  then the object pickle whose tensors name storages by a persistent id ('storage',
  StorageType, key, location, numel, view), then a pickle of the storage keys; after it each
  storage in that order as an int64 element count followed by its raw little-endian elements;
- safetensors.
Both pickle formats go through one unpickler that resolves only an allow-list of globals
(tensor rebuild functions, storage dtypes, OrderedDict); any other global - i.e. any
attempt to run code - is refused with ModelFileError naming the file.
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Callable

import ml_dtypes
import numpy as np

from flashtalker_jax.errors import ModelFileError

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands in for torch.<X>Storage inside a persistent id: carries the numpy dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    """torch._utils._rebuild_tensor(_v2): a strided view of the storage, copied to a fresh array."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_unused) -> np.ndarray:
    return data


# Files from torch < 0.4 (torchvision's 2017 VGG16 weights among them) rebuild tensors with
# `_rebuild_tensor` (no requires_grad / hooks arguments); files saved from GPU may name
# `torch.cuda.<X>Storage`. All of these are data only.
ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{(module, name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()
       for module in ("torch", "torch.cuda")},
}


class _SafeUnpickler(pickle.Unpickler):
    """Allow-listed globals only; `storage(pid)` resolves each persistent id to an array."""

    def __init__(self, file, path: str, storage: Callable[[tuple], np.ndarray]):
        super().__init__(file)
        self.path, self.storage = path, storage

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ModelFileError(self.path, f"refusing to load: the pickle references {module}.{name}, "
                                            "which is not a tensor type (it could run code)",
                                 "convert the weights to safetensors") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and pid[5:] in ((), (None,))):
            raise ModelFileError(self.path, f"unsupported persistent id {pid!r}")
        return self.storage(pid)


def _tensors(loaded: object, path: str) -> dict[str, np.ndarray]:
    if not isinstance(loaded, dict):
        raise ModelFileError(path, f"expected a state dict, found {type(loaded).__name__}")
    return {k: v for k, v in loaded.items() if isinstance(v, np.ndarray)}


def _pickle_prefix(archive: zipfile.ZipFile, path: str) -> str:
    names = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(names) != 1:
        raise ModelFileError(path, f"expected one data.pkl in the zip, found {len(names)}")
    prefix = names[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder").strip() != b"little":
        raise ModelFileError(path, "big-endian torch checkpoints are not supported")
    return prefix


def _load_zip(archive: zipfile.ZipFile, path: str) -> object:
    prefix = _pickle_prefix(archive, path)
    storages: dict[str, np.ndarray] = {}

    def storage(pid) -> np.ndarray:
        _, storage_type, key, _location, numel = pid[:5]
        if key not in storages:
            storages[key] = np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=storage_type.dtype)
            if storages[key].size != numel:
                raise ModelFileError(path, f"storage {key} has {storages[key].size} elements, pickle says {numel}")
        return storages[key]

    with archive.open(f"{prefix}data.pkl") as file:
        return _SafeUnpickler(file, path, storage).load()


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Tensors of a torch zip checkpoint as {name: numpy array}; non-tensor entries dropped."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(path, "not a torch zip checkpoint (legacy pre-1.6 format or corrupt)",
                             "re-save it with a current torch, or convert it to safetensors")
    try:
        with zipfile.ZipFile(path) as archive:
            return _tensors(_load_zip(archive, path), path)
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ModelFileError(path, f"corrupt torch checkpoint ({exc})") from exc


def _load_legacy(path: str) -> object:
    """Two passes: the first learns the storages' types and reads their bytes (stored after
    the pickles); the second rebuilds the tensors from the filled storages."""
    storages: dict[str, np.ndarray] = {}

    def storage(pid) -> np.ndarray:
        _, storage_type, key, _location, numel, _view = pid
        return storages.setdefault(key, np.zeros(numel, storage_type.dtype))

    with open(path, "rb") as file:
        if pickle.load(file) != LEGACY_MAGIC:
            raise ModelFileError(path, "not a torch checkpoint (bad magic number)")
        pickle.load(file)  # protocol version
        sys_info = pickle.load(file)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ModelFileError(path, "big-endian torch checkpoints are not supported")
        objects_at = file.tell()
        _SafeUnpickler(file, path, storage).load()
        for key in pickle.load(file):
            empty = storages[key]
            count = int(np.frombuffer(file.read(8), "<i8")[0])
            raw = file.read(count * empty.dtype.itemsize)
            if count != empty.size or len(raw) != empty.nbytes:
                raise ModelFileError(path, f"storage {key} is truncated or mis-sized")
            storages[key] = np.frombuffer(raw, empty.dtype)
        file.seek(objects_at)
        return _SafeUnpickler(file, path, storage).load()


def load_torch_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: numpy array} from a .pth/.pt/.bin (zip or legacy) or .safetensors file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(path, "weight file not found")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    if zipfile.is_zipfile(path):
        return load_torch_state_dict(path)
    try:
        return _tensors(_load_legacy(path), path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise ModelFileError(path, f"corrupt or unsupported torch checkpoint ({exc})") from exc
