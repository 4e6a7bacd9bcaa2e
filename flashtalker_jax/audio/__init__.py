"""Audio input and speech features, aligned to video frames (2 feature rows per frame).

- io: `load_audio` (any file -> mono float32 at one rate, with checks and messages);
  SAMPLE_RATE and FPS, the project's default rates
- features: `log_mel_features` (no weights needed), `num_video_frames`, step-grid resampling
- wav2vec2: Flax NNX Wav2Vec 2.0 loaded from a local Hugging Face folder
- clip: `Clip` / `open_clip` (a file decoded once, log-mel memoised, shared by consumers)
- extractor: `FeatureExtractor`, the one feature extractor of training and inference
  (whole clip, or windowed for streaming; windowed: wav2vec2 segments)
- cache: per-clip feature cache of the extractor (keyed by content hash + feature settings)
- augment: `RecordingAugment` (gain + noise-floor augmentation of log-power features for training)
"""
from flashtalker_jax.audio.extractor import FeatureExtractor
from flashtalker_jax.audio.features import log_mel_features, num_video_frames, to_video_steps
from flashtalker_jax.audio.io import (FPS, SAMPLE_RATE, AudioConversionWarning, AudioQualityWarning,
                                      load_audio)

__all__ = ["FPS", "SAMPLE_RATE", "AudioConversionWarning", "AudioQualityWarning", "FeatureExtractor",
           "load_audio", "log_mel_features", "num_video_frames", "to_video_steps"]
