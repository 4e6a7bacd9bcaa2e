"""FeatureExtractor with a cache folder: one entry per (audio content, feature settings),
reused on later calls."""
import shutil
import warnings

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config
from transformers import Wav2Vec2Model as TorchWav2Vec2Model

from flashtalker_jax.audio import FeatureExtractor, load_audio, log_mel_features, num_video_frames
from flashtalker_jax.audio.io import AudioConversionWarning, default_audio_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.audio.wav2vec2 import load_wav2vec2, wav2vec2_features, wav2vec2_to_video_steps

from audio_helpers import shared_clip, speech_like, write_wav


@pytest.fixture
def clip(tmp_path):
    return write_wav(tmp_path / "clip.wav", speech_like(0.6, 16000), 16000, subtype="FLOAT")


def cached_features(path, kind, cache_dir, fps=25.0, config=None, model=None):
    config = default_audio_config() if config is None else config
    return FeatureExtractor(kind, config, model, cache_dir).features(path, fps)


def _no_recompute(*_args, **_kwargs):
    raise AssertionError("features were recomputed although a cache entry exists")


def test_second_call_reads_the_cache(clip, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = cached_features(clip, "log_mel", cache_dir)
    assert first.shape == (30, default_audio_config().log_mel.n_mels + 1)
    np.testing.assert_array_equal(first, log_mel_features(load_audio(clip)))
    assert len(list(cache_dir.glob("*.npy"))) == 1
    moved = tmp_path / "renamed.wav"
    shutil.copy(clip, moved)
    monkeypatch.setattr(FeatureExtractor, "_compute", _no_recompute)
    np.testing.assert_array_equal(cached_features(clip, "log_mel", cache_dir), first)
    np.testing.assert_array_equal(cached_features(moved, "log_mel", cache_dir), first)  # content, not name


def test_new_content_config_or_fps_make_new_entries(clip, tmp_path):
    cache_dir = tmp_path / "cache"
    base = cached_features(clip, "log_mel", cache_dir)
    config = default_audio_config()
    config.log_mel.n_mels = 40
    assert cached_features(clip, "log_mel", cache_dir, config=config).shape == (30, 41)
    assert cached_features(clip, "log_mel", cache_dir, fps=30.0).shape == (36, base.shape[1])
    write_wav(clip, speech_like(0.6, 16000, seed=9), 16000, subtype="FLOAT")
    assert not np.array_equal(cached_features(clip, "log_mel", cache_dir), base)
    assert len(list(cache_dir.glob("*.npy"))) == 4


def test_wav2vec2_features_are_cached_on_the_video_grid(tmp_path):
    # 1 s like the parity tests: same input shape and architecture, so the jitted forward is reused.
    clip = write_wav(tmp_path / "clip.wav", speech_like(1.0, 16000), 16000, subtype="FLOAT")
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, conv_dim=(16,) * 7)
    TorchWav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    loaded, settings, _ = load_wav2vec2(tmp_path / "w2v")
    features = cached_features(clip, "wav2vec2", tmp_path / "cache", model=loaded)
    direct = wav2vec2_to_video_steps(wav2vec2_features(loaded, load_audio(clip)), settings, 16000, 25)
    assert features.shape == (50, 32)
    np.testing.assert_array_equal(features, direct)
    with pytest.raises(ConfigError, match="needs the model"):
        cached_features(clip, "wav2vec2", tmp_path / "cache")
    with pytest.raises(ConfigError, match="use one of"):
        cached_features(clip, "mfcc", tmp_path / "cache")


@pytest.mark.parametrize("name", ["english_commentary_60s.wav", "accented_english_12s.wav"])
def test_real_clips_give_two_rows_per_video_frame(name, tmp_path, shared_data):
    path = shared_clip(shared_data, name)
    with warnings.catch_warnings():  # conversion messages are checked in test_audio_io.py
        warnings.simplefilter("ignore", AudioConversionWarning)
        features = cached_features(path, "log_mel", tmp_path)
        n_frames = num_video_frames(load_audio(path).shape[0], 16000, 25.0)
    assert features.shape == (2 * n_frames, 81) and np.all(np.isfinite(features))
    # Speech is not stationary: the energy channel spans a wide range across the clip.
    assert np.ptp(features[:, -1]) > 5.0
