"""The training state: one pytree holding everything a step reads and writes.

Built with the project's NNX pattern: `graphdef, params, rest = nnx.split(model,
nnx.Param, ...)`. `graphdef` is static (never traced or saved); `params` are the trained
leaves; `rest` holds any other variables (batch statistics, RNG counters). The whole
TrainState is what Orbax checkpoints.
"""
from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

ModelFactory = Callable[[nnx.Rngs], nnx.Module]


@flax.struct.dataclass
class TrainState:
    """step: updates attempted so far (skipped non-finite ones included), int32 scalar.
    rng: raw uint32 key data (2,), folded with `step` for each step's randomness.
    nonfinite_total / nonfinite_run: skipped updates overall / in a row, int32 scalars.
    """
    step: jax.Array
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    rng: jax.Array
    nonfinite_total: jax.Array
    nonfinite_run: jax.Array


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, trainable params, everything else)."""
    return nnx.split(model, nnx.Param, ...)


def init_state(make_model: ModelFactory, tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """A fresh state from a typed PRNG key (traceable: jit it with out_shardings)."""
    init_key, step_key = jax.random.split(key)
    _, params, rest = split_model(make_model(nnx.Rngs(init_key)))
    zero = jnp.zeros((), jnp.int32)
    return TrainState(step=zero, params=params, rest=rest, opt_state=tx.init(params),
                      rng=jax.random.key_data(step_key), nonfinite_total=zero, nonfinite_run=zero)


def abstract_state(make_model: ModelFactory, tx: optax.GradientTransformation
                   ) -> tuple[nnx.GraphDef, TrainState]:
    """The model's graphdef and the state's shapes/dtypes, without allocating anything."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))
    shapes = jax.eval_shape(lambda k: init_state(make_model, tx, k), jax.random.key(0))
    return graphdef, shapes


def merge_model(graphdef: nnx.GraphDef, state: TrainState) -> nnx.Module:
    """The live model for evaluation or export."""
    return nnx.merge(graphdef, state.params, state.rest)


def params_as_numpy(state: TrainState) -> dict[str, Any]:
    """Parameters as a flat {"a/b/c": np.ndarray} dict (tests, comparisons, export)."""
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    return {key_path_str(p): jax.device_get(v) for p, v in flat}


def key_path_str(path) -> str:
    """`a/b/0/kernel/value`, the same names Orbax uses for a leaf."""
    return "/".join(key_name(k) for k in path)


def key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)
