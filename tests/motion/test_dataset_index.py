"""A motion dataset folder (`synth-a2e-data`: FLAME parameters and audio, no images) read
through the VHAP index, and read_identity's sentences following the index's splits."""
from __future__ import annotations

import numpy as np
import pytest

from flashtalker_jax.config import load_config
from flashtalker_jax.data.vhap import read_vhap_index
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.motion.dataset import read_identity


@pytest.fixture(scope="module")
def motion_folder(tmp_path_factory):
    from flashtalker_jax.motion.jobs import synthesize

    root = tmp_path_factory.mktemp("a2e")
    synthesize(root, identities=1, first=0, seconds=3.0, seed=0,
               cfg=load_config("data_synth", ["split.val_sentences=1"]))
    return root / "id000"


def _frame_features(path, fps):
    """One row per feature step holding its frame index, so slices can be checked."""
    n = len(read_vhap_index(path.parent).timesteps)
    return np.repeat(np.arange(n, dtype=np.float32), 2)[:, None]


def test_motion_folder_index(motion_folder):
    index = read_vhap_index(motion_folder)
    n = len(index)
    assert n > 25 and index.fps == 25.0 and not any(index.image_paths)
    np.testing.assert_array_equal(np.sort(index.timesteps), np.arange(n))
    assert index.audio_path == motion_folder / "audio.wav"
    assert index.canonical_path == motion_folder / "canonical_flame_param.npz"
    assert all(p.is_file() for p in index.flame_paths)
    covered = np.concatenate([index.split_timesteps(s) for s in ("train", "val", "test")])
    assert sorted(covered) == list(range(n))


def test_read_identity_follows_the_index(motion_folder):
    index = read_vhap_index(motion_folder)
    ident = read_identity(motion_folder, 1, n_expr=10, feature_fn=_frame_features)
    for split in ("train", "val", "test"):
        frames = [s.start + np.arange(s.motion.shape[0]) for s in ident.splits[split]]
        frames = np.concatenate(frames) if frames else np.zeros(0, int)
        np.testing.assert_array_equal(frames, np.sort(index.split_timesteps(split)))
        for sentence in ident.splits[split]:
            np.testing.assert_array_equal(sentence.audio[::2, 0], sentence.start + np.arange(sentence.motion.shape[0]))


def test_read_identity_names_missing_audio(motion_folder, tmp_path):
    import shutil

    copy = shutil.copytree(motion_folder, tmp_path / "id", ignore=shutil.ignore_patterns("audio.wav"))
    with pytest.raises(InputFileError, match=r"id/audio\.wav: audio file"):
        read_identity(copy, 1, n_expr=10, feature_fn=_frame_features)
