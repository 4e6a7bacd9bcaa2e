"""Safe torch weight reader (utils/torch_weights.py): tensors round-trip exactly against
torch.save in the zip and legacy formats, safetensors load, and pickles that would run code
are refused without running it. (That loading needs no torch at run time is tested in
tests/audio/test_wav2vec2_parity.py.)"""
import os
import pickle
import struct

import ml_dtypes
import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.torch_weights import load_torch_state_dict, load_torch_weights

import torch


def test_state_dict_round_trips_exactly(tmp_path):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=generator)
    state = {
        "float32": torch.randn(3, 4, 5, generator=generator),
        "transposed_view": base.t(),            # non-contiguous strides
        "offset_slice": base[2:4, 1:],          # shares storage, non-zero offset
        "float16": torch.randn(7, generator=generator).half(),
        "bfloat16": torch.randn(7, generator=generator).bfloat16(),
        "int64": torch.arange(10),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
    }
    path = tmp_path / "state.bin"
    torch.save(state, path)
    loaded = load_torch_state_dict(path)
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        expected = tensor.detach().float().numpy() if tensor.dtype == torch.bfloat16 else tensor.detach().numpy()
        got = loaded[key].astype(np.float32) if loaded[key].dtype == ml_dtypes.bfloat16 else loaded[key]
        assert got.shape == expected.shape, key
        np.testing.assert_array_equal(got, expected, err_msg=key)
    assert loaded["bfloat16"].dtype == ml_dtypes.bfloat16 and loaded["int64"].dtype == np.int64


class _TouchesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "was_run"
    path = tmp_path / "evil.bin"
    torch.save({"weight": torch.zeros(2), "payload": _TouchesMarker(marker)}, path)
    with pytest.raises(ModelFileError, match="refusing to load.*system") as info:
        load_torch_state_dict(path)
    assert "evil.bin" in str(info.value)
    assert not marker.exists()


def test_non_zip_file_is_refused(tmp_path):
    path = tmp_path / "old.bin"
    path.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ModelFileError, match="not a torch zip checkpoint"):
        load_torch_state_dict(path)


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
