"""Read user-supplied torch weight files as numpy, without torch and without running code.

Formats: torch zip checkpoints (torch >= 1.6; read by the audio package's allow-list reader),
the legacy pre-1.6 torch.save format (which the LPIPS linear layers and torchvision's VGG16
weights still use) and safetensors. The legacy reader uses the same allow-list of pickle
globals (tensor rebuild functions, storage dtypes, OrderedDict); anything else is refused.

Legacy layout: pickles of the magic number, the protocol version and system info, then the
object pickle whose tensors name storages by a persistent id ('storage', StorageType, key,
location, numel, view), then a pickle of the storage keys; after it each storage in that
order as an int64 element count followed by its raw little-endian elements.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np

from flashtalker_jax.audio.wav2vec2.torch_zip import (ALLOWED_GLOBALS, STORAGE_DTYPES,
                                                      _rebuild_tensor, _StorageType,
                                                      load_torch_state_dict)
from flashtalker_jax.errors import ModelFileError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Files from torch < 0.4 (torchvision's 2017 VGG16 weights among them) rebuild tensors with
# `_rebuild_tensor` (no requires_grad / hooks arguments); files saved from GPU may name
# `torch.cuda.<X>Storage`. Both are data only.
LEGACY_GLOBALS = {
    **ALLOWED_GLOBALS,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch.cuda", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves allow-listed globals; storages come from `storages` or are made empty."""

    def __init__(self, file, path: str, storages: dict[str, np.ndarray] | None = None):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, np.ndarray] = storages if storages is not None else {}

    def find_class(self, module: str, name: str):
        try:
            return LEGACY_GLOBALS[(module, name)]
        except KeyError:
            raise ModelFileError(self.path, "refusing to load: the pickle references"
                                            f" {module}.{name}, which is not a tensor type"
                                            " (it could run code)",
                                 "convert the weights to safetensors") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and pid[5] is None):
            raise ModelFileError(self.path, f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, _view = pid
        if key not in self.storages:
            self.storages[key] = np.zeros(numel, storage_type.dtype)
        return self.storages[key]


def _load_legacy(path: str) -> object:
    """Two passes: the first learns the storages' types and reads their bytes (stored after
    the pickles); the second rebuilds the tensors from the filled storages."""
    with open(path, "rb") as file:
        if pickle.load(file) != LEGACY_MAGIC:
            raise ModelFileError(path, "not a torch checkpoint (bad magic number)")
        pickle.load(file)  # protocol version
        sys_info = pickle.load(file)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ModelFileError(path, "big-endian torch checkpoints are not supported")
        objects_at = file.tell()
        scan = _LegacyUnpickler(file, path)
        scan.load()
        storages = {}
        for key in pickle.load(file):
            empty = scan.storages[key]
            count = int(np.frombuffer(file.read(8), "<i8")[0])
            raw = file.read(count * empty.dtype.itemsize)
            if count != empty.size or len(raw) != empty.nbytes:
                raise ModelFileError(path, f"storage {key} is truncated or mis-sized")
            storages[key] = np.frombuffer(raw, empty.dtype)
        file.seek(objects_at)
        return _LegacyUnpickler(file, path, storages).load()


def load_torch_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: numpy array} from a .pth/.pt (zip or legacy) or .safetensors file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(path, "weight file not found")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    if zipfile.is_zipfile(path):
        return load_torch_state_dict(path)
    try:
        loaded = _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise ModelFileError(path, f"corrupt or unsupported torch checkpoint ({exc})") from exc
    if not isinstance(loaded, dict):
        raise ModelFileError(path, f"expected a state dict, found {type(loaded).__name__}")
    return {k: v for k, v in loaded.items() if isinstance(v, np.ndarray)}
