"""read_vhap_index: the metadata of a VHAP folder (no images read), what read_vhap and the
motion dataset both start from."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flashtalker_jax.data.vhap import read_vhap, read_vhap_index
from flashtalker_jax.errors import InputFileError
from toy import make_toy_identity


@pytest.fixture
def toy(tmp_path):
    return make_toy_identity(tmp_path / "id", seed=3, fps=30.0)


def test_index_of_a_hand_written_folder(toy):
    index = read_vhap_index(toy)
    assert len(index) == 12 and (index.width, index.height) == (16, 16) and index.fps == 30.0
    np.testing.assert_array_equal(index.timesteps, np.arange(12))
    np.testing.assert_array_equal(index.cameras, np.zeros(12))
    assert index.audio_path == toy / "audio.wav" and index.canonical_path is None
    assert index.flame_paths[5] == toy / "flame_param" / "00005.npz"
    assert index.image_paths[5] == toy / "images" / "00005_00.png"
    np.testing.assert_array_equal(index.split_timesteps("test"), np.arange(8, 12))
    assert index.split_timesteps("val").size == 0  # the toy folder has no val split
    assert read_vhap_index(toy, fps=25.0).fps == 25.0


def test_read_vhap_agrees_with_the_index(toy):
    index, seq = read_vhap_index(toy), read_vhap(toy)
    for name in ("timesteps", "cameras", "K", "c2w"):
        np.testing.assert_array_equal(getattr(seq, name), getattr(index, name), err_msg=name)
    assert seq.image_paths == index.image_paths and seq.fps == index.fps
    assert seq.splits.keys() == index.splits.keys()


def test_the_index_reads_no_images(toy):
    for image in (toy / "images").glob("*.png"):
        image.unlink()
    assert len(read_vhap_index(toy)) == 12
    with pytest.raises(InputFileError, match="frames have no file_path file"):
        read_vhap(toy)


def test_audio_named_but_missing_is_refused_and_unnamed_absent_is_none(toy):
    meta = json.loads((toy / "transforms.json").read_text())
    meta["audio_path"] = "speech.wav"
    (toy / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match="speech.wav: audio file named in transforms.json is missing"):
        read_vhap_index(toy)
    meta["audio_path"] = None
    (toy / "transforms.json").write_text(json.dumps(meta))
    assert read_vhap_index(toy).audio_path == toy / "audio.wav"  # the default name
    (toy / "audio.wav").unlink()
    assert read_vhap_index(toy).audio_path is None
