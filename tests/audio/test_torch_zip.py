"""Safe torch.save reader: tensors round-trip exactly, code-running pickles are refused.

(That loading needs no torch at run time is tested in test_wav2vec2_parity.py.)"""
import os

import ml_dtypes
import numpy as np
import pytest
import torch

from flashtalker_jax.audio.wav2vec2.torch_zip import load_torch_state_dict
from flashtalker_jax.errors import ModelFileError


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


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "was_run"
    path = tmp_path / "evil.bin"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, path)
    with pytest.raises(ModelFileError, match="refusing to load.*system") as info:
        load_torch_state_dict(path)
    assert "evil.bin" in str(info.value)
    assert not marker.exists()


def test_non_zip_file_is_refused(tmp_path):
    path = tmp_path / "old.bin"
    path.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ModelFileError, match="not a torch zip checkpoint"):
        load_torch_state_dict(path)
