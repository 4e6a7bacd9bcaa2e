"""One FeatureExtractor for training and inference: the whole-clip rows that training
slices into sentences and the rows streamed inference reads window by window are the same
rows for the same clip, for log-mel and for wav2vec2."""
from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from flashtalker_jax.audio import FPS, SAMPLE_RATE, FeatureExtractor
from flashtalker_jax.audio.clip import open_clip
from flashtalker_jax.audio.io import default_audio_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.motion.tasks import feature_extractor

from audio_helpers import speech_like, write_wav

STEPS = 2


def _streamed(rows, n: int) -> np.ndarray:
    """Rows as the motion windows ask for them: 12-frame windows with 3 frames of context."""
    return np.concatenate([rows(start, 12)[STEPS * 3:] for start in range(-3, n, 9)])[:STEPS * n]


def _task(features: str, wav2vec2_dir: str = "", cache: str = "") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"features": features, "wav2vec2_dir": wav2vec2_dir, "feature_cache": cache})


@pytest.fixture
def clip(tmp_path):
    return write_wav(tmp_path / "clip.wav", speech_like(1.3, SAMPLE_RATE), SAMPLE_RATE, subtype="FLOAT")


def test_log_mel_training_and_inference_rows_are_identical(clip, tmp_path):
    training = feature_extractor(_task("log_mel", cache=str(tmp_path / "cache"))).features(clip, FPS)
    rows, n = FeatureExtractor.load("log_mel").rows(open_clip(clip), FPS, STEPS)
    assert n == 32 and training.shape == (STEPS * n, default_audio_config().log_mel.n_mels + 1)
    np.testing.assert_array_equal(_streamed(rows, n), training)
    np.testing.assert_array_equal(FeatureExtractor.load("log_mel").rows(clip, FPS, STEPS)[0](0, n), training)
    assert not rows(-4, 4).any() and not rows(n, 3).any()  # outside the clip: zero rows


def test_wav2vec2_training_and_inference_rows_match(clip, tmp_path):
    """A clip within one wav2vec2 segment: same samples through the same network; the step
    times are computed two ways (whole-clip grid vs segment offset), 1 ulp apart."""
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, conv_dim=(8,) * 7, num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=2)
    transformers.Wav2Vec2Model(config).eval().save_pretrained(tmp_path / "w2v")
    task = _task("wav2vec2", str(tmp_path / "w2v"))
    training = feature_extractor(task).features(clip, FPS)
    rows, n = FeatureExtractor.load("wav2vec2", tmp_path / "w2v").rows(clip, FPS, STEPS)
    assert training.shape == (STEPS * n, 16)
    np.testing.assert_allclose(_streamed(rows, n), training, atol=1e-6)


def test_unknown_kind_and_missing_model_are_config_errors():
    with pytest.raises(ConfigError, match="use one of"):
        FeatureExtractor.load("mfcc")
    with pytest.raises(ConfigError, match="needs the model"):
        FeatureExtractor("wav2vec2")
