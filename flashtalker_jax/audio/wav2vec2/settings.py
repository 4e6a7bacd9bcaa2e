"""Wav2Vec 2.0 architecture and preprocessing settings read from a Hugging Face folder.

Only the fields that change the inference graph are kept; training-only fields
(dropouts, masking, quantizer, CTC head) are ignored because heads are not loaded.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from flashtalker_jax.audio.io import SAMPLE_RATE
from flashtalker_jax.errors import ModelFileError

# Activations the port implements; "gelu" in transformers is the exact erf form.
SUPPORTED_ACTIVATIONS = ("gelu",)


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Settings:
    """Architecture of a Wav2Vec2Model (names follow transformers' Wav2Vec2Config)."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    feat_extract_activation: str = "gelu"
    feat_extract_norm: str = "group"      # "group": GroupNorm on conv 0 only; "layer": LayerNorm on every conv
    do_stable_layer_norm: bool = False    # False: post-LN encoder (base); True: pre-LN + final LN (large-lv60, XLS-R)
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5

    @property
    def hop_length(self) -> int:
        """Input samples between consecutive output rows (320 -> 50 Hz at 16 kHz)."""
        hop = 1
        for stride in self.conv_stride:
            hop *= stride
        return hop

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one output row of the conv stack (400 for the standard stack)."""
        field = 1
        for kernel, stride in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            field = (field - 1) * stride + kernel
        return field

    def num_output_rows(self, num_samples: int) -> int:
        rows = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            rows = (rows - kernel) // stride + 1
        return rows


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Preprocessor:
    """preprocessor_config.json: expected sampling rate and per-clip normalisation."""

    sampling_rate: int = SAMPLE_RATE  # transformers' default when the file omits it
    do_normalize: bool = True


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ModelFileError(path, f"cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"invalid JSON ({exc})") from exc


def _check_supported(path: str | os.PathLike, raw: dict) -> None:
    model_type = raw.get("model_type", "wav2vec2")
    if model_type != "wav2vec2":
        raise ModelFileError(path, f"model_type is {model_type!r}, expected 'wav2vec2'",
                             "pass a Wav2Vec 2.0 checkpoint folder")
    if raw.get("add_adapter") or raw.get("adapter_attn_dim") is not None:
        raise ModelFileError(path, "adapter layers (add_adapter / adapter_attn_dim) are not supported",
                             "use the plain pretrained encoder checkpoint")
    for key in ("hidden_act", "feat_extract_activation"):
        if raw.get(key, "gelu") not in SUPPORTED_ACTIVATIONS:
            raise ModelFileError(path, f"{key}={raw[key]!r} is not supported (only {SUPPORTED_ACTIVATIONS})")
    if raw.get("feat_extract_norm", "group") not in ("group", "layer"):
        raise ModelFileError(path, f"feat_extract_norm={raw['feat_extract_norm']!r}, expected 'group' or 'layer'")


def settings_from_dict(raw: dict, path: str | os.PathLike) -> Wav2Vec2Settings:
    """Parse a transformers config.json dict; unknown keys are ignored."""
    _check_supported(path, raw)
    values = {}
    for field in dataclasses.fields(Wav2Vec2Settings):
        if field.name in raw:
            value = raw[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
    settings = Wav2Vec2Settings(**values)
    lengths = {len(settings.conv_dim), len(settings.conv_kernel), len(settings.conv_stride)}
    if len(lengths) != 1:
        raise ModelFileError(path, "conv_dim, conv_kernel and conv_stride have different lengths")
    if settings.hidden_size % settings.num_attention_heads:
        raise ModelFileError(path, f"hidden_size {settings.hidden_size} is not divisible by "
                                   f"num_attention_heads {settings.num_attention_heads}")
    return settings


def read_settings(folder: str | os.PathLike) -> tuple[Wav2Vec2Settings, Wav2Vec2Preprocessor]:
    """Architecture from config.json and preprocessing from preprocessor_config.json.

    A missing preprocessor_config.json means the Wav2Vec2FeatureExtractor defaults
    (16 kHz, normalised), which is what every public wav2vec2 checkpoint uses.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFileError(folder, "no config.json in the wav2vec2 folder",
                             "pass a local Hugging Face checkpoint folder")
    settings = settings_from_dict(_read_json(config_path), config_path)
    preprocessor_path = folder / "preprocessor_config.json"
    preprocessor = Wav2Vec2Preprocessor()
    if preprocessor_path.is_file():
        raw = _read_json(preprocessor_path)
        preprocessor = Wav2Vec2Preprocessor(
            sampling_rate=int(raw.get("sampling_rate", preprocessor.sampling_rate)),
            do_normalize=bool(raw.get("do_normalize", preprocessor.do_normalize)))
    return settings, preprocessor
