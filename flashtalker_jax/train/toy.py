"""The toy task: an MLP regressing a fixed smooth random function of its input.

Real gradients on a real (small) model, used by the trainer's tests and benchmark.
Data: x ~ N(0, 1) of shape (N, input_dim); y = sin(x A) B with fixed random A, B drawn
from `data_seed`. Training adds Gaussian noise of std `input_noise` to x from the step's
key, so the step's randomness is exercised (and must replay exactly on resume).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from flashtalker_jax.train.data import ArrayBatchIterator
from flashtalker_jax.train.tasks import Task


class MLP(nnx.Module):
    def __init__(self, input_dim: int, hidden: Sequence[int], output_dim: int, rngs: nnx.Rngs):
        widths = [input_dim, *hidden]
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nnx.Linear(widths[-1], output_dim, rngs=rngs)

    def __call__(self, x: Float[Array, "B D"]) -> Float[Array, "B O"]:
        for layer in self.hidden:
            x = jax.nn.gelu(layer(x))
        return self.out(x)


def make_dataset(num_examples: int, input_dim: int, output_dim: int, seed: int) -> dict[str, np.ndarray]:
    """{"x": (N, input_dim), "y": (N, output_dim)} float32."""
    rng = np.random.default_rng(seed)
    mix_in = rng.normal(size=(input_dim, 16)) / np.sqrt(input_dim)
    mix_out = rng.normal(size=(16, output_dim)) / 4.0
    x = rng.normal(size=(num_examples, input_dim))
    y = np.sin(x @ mix_in) @ mix_out
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}


def make_task(cfg: ml_collections.ConfigDict) -> Task:
    arrays = make_dataset(cfg.num_examples, cfg.input_dim, cfg.output_dim, cfg.data_seed)
    noise = float(cfg.input_noise)

    def make_model(rngs: nnx.Rngs) -> MLP:
        return MLP(cfg.input_dim, tuple(cfg.hidden), cfg.output_dim, rngs)

    def loss_fn(model: MLP, batch: dict, key: jax.Array):
        x = batch["x"] + noise * jax.random.normal(key, batch["x"].shape)
        mse = jnp.mean((model(x) - batch["y"]) ** 2)
        return mse, {"mse": mse}

    def make_data(process_index: int, process_count: int) -> ArrayBatchIterator:
        return ArrayBatchIterator(arrays, cfg.batch_size, cfg.data_seed, process_index, process_count)

    return Task(make_model=make_model, loss_fn=loss_fn, make_data=make_data)
