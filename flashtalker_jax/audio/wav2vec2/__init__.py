"""Wav2Vec 2.0 speech features from a local Hugging Face checkpoint folder (Flax NNX, no torch).

    loaded, settings, preprocessor = load_wav2vec2("checkpoints/wav2vec2-base-960h")
    waveform = load_audio("speech.wav", preprocessor.sampling_rate)
    feats = wav2vec2_features(loaded, waveform)                 # (T_w, hidden) at 50 Hz
    steps = wav2vec2_to_video_steps(feats, settings, preprocessor.sampling_rate, n_frames)
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from flashtalker_jax.audio.features import to_video_steps
from flashtalker_jax.audio.io import FPS
from flashtalker_jax.audio.wav2vec2.model import Wav2Vec2Model
from flashtalker_jax.audio.wav2vec2.settings import Wav2Vec2Preprocessor, Wav2Vec2Settings, read_settings
from flashtalker_jax.audio.wav2vec2.weights import fill_state, read_backbone_tensors, weight_files

__all__ = ["LoadedWav2Vec2", "Wav2Vec2Model", "Wav2Vec2Preprocessor", "Wav2Vec2Settings", "load_wav2vec2",
           "normalise_waveform", "wav2vec2_features", "wav2vec2_to_video_steps"]

# Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm adds this to the variance.
NORMALISE_EPS = 1e-7
_FINGERPRINT_BYTES = 1 << 20


def _checkpoint_id(folder: Path) -> str:
    """Cheap identity of a checkpoint folder: configs plus name, size, head and tail of each weight file."""
    digest = hashlib.sha256()
    for name in ("config.json", "preprocessor_config.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    for path in weight_files(folder):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as file:
            digest.update(file.read(_FINGERPRINT_BYTES))
            file.seek(max(size - _FINGERPRINT_BYTES, 0))
            digest.update(file.read())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class LoadedWav2Vec2:
    """A loaded checkpoint: the NNX network, its input preprocessing and an identity.

    Kept outside the NNX module so that every checkpoint of one architecture shares the
    jitted forward (the graph holds only `settings`).
    """

    model: Wav2Vec2Model
    preprocessor: Wav2Vec2Preprocessor
    checkpoint_id: str  # identifies the weights in feature-cache keys

    @property
    def settings(self) -> Wav2Vec2Settings:
        return self.model.settings


def load_wav2vec2(folder: str | os.PathLike) -> tuple[LoadedWav2Vec2, Wav2Vec2Settings, Wav2Vec2Preprocessor]:
    """Load a Wav2Vec2 backbone from a local folder (config.json + safetensors or .bin).

    Returns the loaded model (NNX network + preprocessor + checkpoint id), its
    architecture settings and the preprocessor settings. Heads in the checkpoint are ignored.
    """
    folder = Path(folder)
    settings, preprocessor = read_settings(folder)
    abstract = nnx.eval_shape(lambda: Wav2Vec2Model(settings, nnx.Rngs(0)))
    model = fill_state(abstract, read_backbone_tensors(folder), folder)
    return LoadedWav2Vec2(model, preprocessor, _checkpoint_id(folder)), settings, preprocessor


def normalise_waveform(waveform: np.ndarray, preprocessor: Wav2Vec2Preprocessor) -> np.ndarray:
    """Per-clip zero mean / unit variance when the preprocessor asks for it (float32, as transformers)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if not preprocessor.do_normalize:
        return waveform
    return (waveform - waveform.mean()) / np.sqrt(waveform.var() + NORMALISE_EPS)


@partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, samples):
    return nnx.merge(graphdef, state)(samples)


def wav2vec2_features(loaded: LoadedWav2Vec2, waveform: np.ndarray) -> np.ndarray:
    """Last hidden state of a mono waveform at the model's sampling rate, (T_w, hidden) float32.

    T_w = settings.num_output_rows(S) = (S - 400) // 320 + 1 rows at 50 Hz for the standard
    conv stack (S >= 400); row j covers samples [320 j, 320 j + 400).
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform (S,), got shape {waveform.shape}")
    if waveform.shape[0] < loaded.settings.receptive_field:
        raise ValueError(f"waveform has {waveform.shape[0]} samples; wav2vec2 needs at least "
                         f"{loaded.settings.receptive_field}")
    samples = normalise_waveform(waveform, loaded.preprocessor)[None]
    graphdef, state = nnx.split(loaded.model)
    return np.asarray(_apply(graphdef, state, samples)[0])


def wav2vec2_to_video_steps(features: np.ndarray, settings: Wav2Vec2Settings, sample_rate: int,
                            n_frames: int, fps: float = FPS, steps_per_frame: int = 2) -> np.ndarray:
    """Resample wav2vec2 rows to exactly steps_per_frame * n_frames rows on the video-step grid.

    Row j is centred at (hop * j + receptive_field / 2) / sample_rate (12.5 ms + 20 ms j for
    the standard stack at 16 kHz); see features.py for the step-grid convention.
    """
    first_time = settings.receptive_field / 2 / sample_rate
    return to_video_steps(features, sample_rate / settings.hop_length, first_time, n_frames, fps, steps_per_frame)
