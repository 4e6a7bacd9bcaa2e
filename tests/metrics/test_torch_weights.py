"""Weight-file reader: exact round trips against torch.save, and refusal of unsafe pickles."""

import os

import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.metrics.torch_weights import load_torch_weights

torch = pytest.importorskip("torch")


def _state():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"w": base, "w_t": base.t(), "row": base[1],
            "long": torch.tensor([1, -2], dtype=torch.int64),
            "half": torch.tensor([0.5, 2.0], dtype=torch.float16),
            "param": torch.nn.Parameter(torch.ones(2, 2))}


@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip_matches_torch(tmp_path, legacy):
    path = tmp_path / "w.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=not legacy)
    loaded = load_torch_weights(path)
    for name, tensor in _state().items():
        expected = tensor.detach().numpy()
        assert loaded[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(loaded[name], expected, err_msg=name)


def test_safetensors(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a": np.arange(3, dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(load_torch_weights(tmp_path / "w.safetensors")["a"], [0, 1, 2])


class _Storage:
    def __init__(self, values):
        self.values = values


class _OldTensor:
    """Pickles like a torch < 0.4 tensor: torch._utils._rebuild_tensor(storage, 0, size, stride)."""

    def __init__(self, storage, size, stride):
        self.args = (storage, 0, size, stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor, self.args)


def test_pre_0_4_legacy_file(tmp_path):
    """Writes the legacy layout by hand (torch no longer can) with old-style rebuild calls."""
    import pickle
    import struct

    values = np.arange(6, dtype=np.float32)
    storage = _Storage(values)
    state = {"w": _OldTensor(storage, (2, 3), (3, 1)), "w_t": _OldTensor(storage, (3, 2), (1, 3))}
    path = tmp_path / "old.pth"
    with open(path, "wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        pickler = pickle.Pickler(file, protocol=2)
        pickler.persistent_id = lambda obj: (("storage", torch.cuda.FloatStorage, "7", "cuda:0",
                                              obj.values.size, None)
                                             if isinstance(obj, _Storage) else None)
        pickler.dump(state)
        pickle.dump(["7"], file, protocol=2)
        file.write(struct.pack("<q", values.size) + values.tobytes())
    loaded = load_torch_weights(path)
    np.testing.assert_array_equal(loaded["w"], values.reshape(2, 3))
    np.testing.assert_array_equal(loaded["w_t"], values.reshape(2, 3).T)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize("legacy", [False, True])
def test_refuses_code(tmp_path, legacy):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _RunsCode()}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ModelFileError, match="refusing to load"):
        load_torch_weights(path)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_torch_weights(tmp_path / "absent.pth")
    path = tmp_path / "cut.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated"):
        load_torch_weights(path)
