"""Audio input and speech features, aligned to video frames (2 feature rows per frame).

- io: `load_audio` (any file -> mono float32 at one rate, with checks and messages)
- features: `log_mel_features` (no weights needed), `num_video_frames`, step-grid resampling
- wav2vec2: Flax NNX Wav2Vec 2.0 loaded from a local Hugging Face folder
- cache: `cached_features` (per clip, keyed by content hash + feature settings)
- augment: `RecordingAugment` (gain + noise-floor augmentation of log-power features for training)
"""
from flashtalker_jax.audio.cache import cached_features
from flashtalker_jax.audio.features import log_mel_features, num_video_frames, to_video_steps
from flashtalker_jax.audio.io import AudioConversionWarning, AudioQualityWarning, load_audio

__all__ = ["AudioConversionWarning", "AudioQualityWarning", "cached_features", "load_audio",
           "log_mel_features", "num_video_frames", "to_video_steps"]
