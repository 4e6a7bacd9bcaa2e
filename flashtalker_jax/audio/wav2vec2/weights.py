"""Hugging Face Wav2Vec2 checkpoint files -> Flax NNX state of `Wav2Vec2Model`.

Reads model.safetensors or pytorch_model.bin (each optionally sharded with an
`.index.json`), normalises key names and maps every parameter by one rule:
the NNX path joined with dots is the torch key, with kernel/scale -> weight, the
positional conv's parameters under `.conv` and the layer index after `encoder.layers`
(encoder layer parameters are stacked along a leading layer axis); Linear/Conv kernels
are transposed (torch (out, in[, k]) -> Flax ([k,] in, out)) and weight_g (1, 1, K)
flattened to (K,).

Accepted key spellings: optional `wav2vec2.` prefix (ForCTC/ForPreTraining files),
weight norm as `weight_g`/`weight_v` (old) or `parametrizations.weight.original0/1`
(torch >= 2.1), LayerNorm `gamma`/`beta` (very old files). Keys outside
feature_extractor / feature_projection / encoder (CTC and pre-training heads,
quantizer, masked_spec_embed) are ignored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from flax import nnx
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_safetensors

from flashtalker_jax.utils.torch_weights import load_torch_state_dict
from flashtalker_jax.errors import ModelFileError

BACKBONE_PREFIXES = ("feature_extractor.", "feature_projection.", "encoder.")
# (single file, shard index) in order of preference.
WEIGHT_FILES = (("model.safetensors", "model.safetensors.index.json"),
                ("pytorch_model.bin", "pytorch_model.bin.index.json"))
RENAMES = (
    (".parametrizations.weight.original0", ".weight_g"),
    (".parametrizations.weight.original1", ".weight_v"),
    (".gamma", ".weight"),
    (".beta", ".bias"),
)


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint file(s) of a folder, safetensors preferred over .bin."""
    folder = Path(folder)
    for single, index in WEIGHT_FILES:
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
                raise ModelFileError(folder / index, f"unreadable shard index ({exc})") from exc
            return [folder / shard for shard in shards]
    raise ModelFileError(folder, "no model.safetensors or pytorch_model.bin (or sharded index) found",
                         "save the model with save_pretrained into this folder")


def _read_file(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ModelFileError(path, "checkpoint shard listed in the index is missing")
    if path.name.endswith(".safetensors"):
        try:
            return load_safetensors(str(path))
        except (SafetensorError, OSError, ValueError, TypeError) as exc:
            raise ModelFileError(path, f"cannot read safetensors file ({exc})") from exc
    return load_torch_state_dict(path)


def normalise_key(key: str) -> str:
    """Checkpoint key -> the canonical Wav2Vec2Model key (no prefix, weight_g/weight_v)."""
    if key.startswith("wav2vec2."):
        key = key[len("wav2vec2."):]
    for old, new in RENAMES:
        if key.endswith(old):
            key = key[: -len(old)] + new
    return key


def read_backbone_tensors(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every backbone tensor of the folder's checkpoint under its canonical key."""
    tensors = {}
    for path in weight_files(folder):
        for key, value in _read_file(path).items():
            key = normalise_key(key)
            if key.startswith(BACKBONE_PREFIXES):
                tensors[key] = value
    return tensors


def _is_stacked(path: tuple) -> bool:
    """Encoder layer parameters carry a leading layer axis (see model.Encoder)."""
    return tuple(str(p) for p in path[:2]) == ("encoder", "layers")


def torch_key(path: tuple, layer: int | None = None) -> str:
    """NNX state path (plus layer index for stacked encoder layers) -> canonical torch key."""
    parts = [str(part) for part in path]
    if layer is not None:
        parts.insert(2, str(layer))
    *parents, leaf = parts
    if parents[-1] == "pos_conv_embed":
        parents.append("conv")
    leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    return ".".join([*parents, leaf])


def to_flax_layout(path: tuple, array: np.ndarray) -> np.ndarray:
    """One torch tensor -> the layout of the NNX parameter at `path` (one layer's slice if stacked)."""
    leaf = str(path[-1])
    if leaf in ("kernel", "weight_v"):
        return np.transpose(array)  # reverses all axes: (out, in) -> (in, out), (out, in, k) -> (k, in, out)
    if leaf == "weight_g":
        return array.reshape(-1)
    return array


def torch_shape(path: tuple, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Inverse of `to_flax_layout` on shapes: the torch tensor shape a parameter expects."""
    leaf = str(path[-1])
    if leaf in ("kernel", "weight_v"):
        return tuple(reversed(shape))
    if leaf == "weight_g":
        return (1, 1, shape[0])
    return tuple(shape)


def _sources(path: tuple, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """(torch key, Flax-layout shape of that tensor) pairs that make up one NNX parameter."""
    if _is_stacked(path):
        return [(torch_key(path, i), shape[1:]) for i in range(shape[0])]
    return [(torch_key(path), shape)]


def expected_torch_shapes(abstract_model: nnx.Module) -> dict[str, tuple[int, ...]]:
    """{canonical torch key: shape} the model needs; works on nnx.eval_shape models."""
    flat = nnx.to_flat_state(nnx.state(abstract_model, nnx.Param))
    return {key: torch_shape(path, shape)
            for path, var in flat for key, shape in _sources(path, tuple(var.shape))}


def fill_state(abstract_model: nnx.Module, tensors: dict[str, np.ndarray], source: str | os.PathLike) -> nnx.Module:
    """A concrete model whose parameters come from `tensors` (canonical keys), as float32.

    Raises ModelFileError for missing, unexpected or mis-shaped backbone tensors, so a
    checkpoint of another architecture never loads silently.
    """
    graphdef, state = nnx.split(abstract_model)
    used, problems, leaves = set(), [], []
    for path, var in nnx.to_flat_state(state):
        parts = []
        for key, shape in _sources(path, tuple(var.shape)):
            used.add(key)
            if key not in tensors:
                problems.append(f"missing {key}")
                continue
            part = to_flax_layout(path, tensors[key])
            if part.shape != shape:
                problems.append(f"{key} has shape {tensors[key].shape}, expected {torch_shape(path, shape)}")
            parts.append(part)
        if not problems:
            value = np.stack(parts) if _is_stacked(path) else parts[0]
            leaves.append((path, var.replace(np.asarray(value, dtype=np.float32))))
    problems += [f"unexpected {key}" for key in sorted(set(tensors) - used)]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ModelFileError(source, f"checkpoint does not match config.json: {shown}",
                             "check that config.json belongs to these weights")
    return nnx.merge(graphdef, nnx.from_flat_state(leaves))
