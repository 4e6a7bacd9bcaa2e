"""VHAP reader: round trip on written folders, and a clear error for each kind of damage."""
from __future__ import annotations

import dataclasses
import shutil
import warnings

import numpy as np
import pytest
import soundfile

from flashtalker_jax.audio import AudioConversionWarning
from flashtalker_jax.data.vhap import read_vhap
from flashtalker_jax.errors import InputFileError
from toy import make_toy_identity


@pytest.fixture
def toy(tmp_path):
    return make_toy_identity(tmp_path / "id", seed=3)


def test_round_trip_of_a_hand_written_folder(toy):
    seq = read_vhap(toy)
    assert len(seq) == 12 and (seq.width, seq.height) == (16, 16)
    np.testing.assert_array_equal(seq.timesteps, np.arange(12))
    np.testing.assert_array_equal(seq.splits["train"], np.arange(8))
    np.testing.assert_array_equal(seq.splits["test"], np.arange(8, 12))
    np.testing.assert_allclose(seq.flame["rotation"][:, 0], np.arange(12))
    np.testing.assert_allclose(seq.flame["jaw_pose"][:, 0], 0.01 * np.arange(12), rtol=1e-6)
    assert seq.flame["expr"].shape == (12, 10) and seq.shape.shape == (20,)
    assert seq.load_image(5)[1, 1, 0] == (3 * 40 + 5) % 256
    assert seq.load_mask(5)[8, 8] == 255 and seq.load_mask(5)[0, 0] == 0
    # OpenGL camera at +z looking down -z -> OpenCV: the origin is straight ahead (z > 0).
    origin_in_camera = seq.w2c[0] @ np.array([0, 0, 0, 1.0])
    np.testing.assert_allclose(origin_in_camera[:3], [0, 0, 1.0], atol=1e-12)
    # Audio of frame t holds the value t / 100 (+ seed / 1000) written by the toy maker.
    np.testing.assert_allclose(seq.audio_for_frames(4, 6)[[0, -1]], [0.043, 0.053], atol=1e-6)


def test_camera_rows_are_one_cameras_frames_in_time_order(toy):
    # The 12 frames relabelled as two interleaved cameras, listed backwards in time.
    seq = dataclasses.replace(read_vhap(toy), cameras=np.array([1, 0] * 6),
                              timesteps=np.repeat(np.arange(6)[::-1], 2))
    np.testing.assert_array_equal(seq.camera_rows(0), [11, 9, 7, 5, 3, 1])
    np.testing.assert_array_equal(seq.camera_rows(), [10, 8, 6, 4, 2, 0])        # row 0's camera
    np.testing.assert_array_equal(seq.camera_rows(rows=np.array([3, 1, 6])), [3, 1])  # row 3's camera
    with pytest.raises(InputFileError, match="no frames of camera 2"):
        seq.camera_rows(2)


def test_round_trip_of_a_synthesised_folder(synth_root):
    folder = synth_root / "identity_000"
    seq = read_vhap(folder)
    with np.load(folder / "flame_param" / "00007.npz") as saved:
        for key in ("rotation", "jaw_pose", "expr", "eyes_pose"):
            np.testing.assert_array_equal(seq.flame[key][7], saved[key])
    assert seq.audio.shape[0] >= len(seq) * seq.sample_rate / seq.fps
    assert seq.load_image(len(seq) - 1).shape == (64, 64, 3)
    assert seq.phonemes and seq.phonemes[0][1] < seq.phonemes[-1][2]


def test_missing_frame_is_named(toy):
    (toy / "images" / "00004_00.png").unlink()
    with pytest.raises(InputFileError, match=r"1 of 12 frames have no file_path file, first images/00004_00.png"):
        read_vhap(toy)


def test_missing_parameter_file_is_named(toy):
    (toy / "flame_param" / "00002.npz").unlink()
    with pytest.raises(InputFileError, match="flame_param/00002.npz"):
        read_vhap(toy)


def test_mismatched_counts_are_reported(toy):
    shutil.copy(toy / "flame_param" / "00000.npz", toy / "flame_param" / "00099.npz")
    with pytest.raises(InputFileError, match="13 parameter files but transforms.json lists 12"):
        read_vhap(toy)


def test_audio_shorter_than_the_video_is_refused(toy):
    audio, rate = soundfile.read(toy / "audio.wav", dtype="float32")
    soundfile.write(toy / "audio.wav", audio[: int(0.3 * rate)], rate)
    with pytest.raises(InputFileError, match=r"audio is 0.300 s but 12 frames at 25 fps need 0.480 s"):
        read_vhap(toy)


def test_other_sample_rate_is_resampled_with_a_note(toy):
    audio, rate = soundfile.read(toy / "audio.wav", dtype="float32")
    soundfile.write(toy / "audio.wav", np.repeat(audio, 3), rate * 3)
    with pytest.warns(AudioConversionWarning, match="resampling 48000 Hz -> 16000 Hz"):
        seq = read_vhap(toy)
    assert abs(seq.audio.shape[0] - audio.shape[0]) <= 2


def test_unreadable_image_is_named_when_loaded(toy):
    (toy / "images" / "00003_00.png").write_bytes(b"not a png")
    seq = read_vhap(toy)                     # listing is fine; decoding is lazy
    with pytest.raises(InputFileError, match="00003_00.png: cannot decode image"):
        seq.load_image(3)


def test_wrong_image_size_is_named(toy):
    from PIL import Image

    Image.new("RGB", (20, 16)).save(toy / "images" / "00001_00.png")
    with pytest.raises(InputFileError, match="image is 20x16 but transforms.json says 16x16"):
        read_vhap(toy).load_image(1)


def test_missing_transforms_and_bad_params_are_named(toy, tmp_path):
    with pytest.raises(InputFileError, match="dataset folder not found"):
        read_vhap(tmp_path / "nowhere")
    np.savez(toy / "flame_param" / "00006.npz", rotation=np.zeros(3))
    with pytest.raises(InputFileError, match=r"00006.npz: missing FLAME keys"):
        read_vhap(toy)
    (toy / "transforms.json").unlink()
    with pytest.raises(InputFileError, match="transforms.json: file not found"):
        read_vhap(toy)


def test_no_warning_for_a_clean_folder(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_vhap(toy)
