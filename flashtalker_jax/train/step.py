"""The train step: a pure function (state, batch) -> (state, metrics), jitted with explicit
shardings and the input state donated.

A non-finite loss or gradient skips the update (params, optimiser and other variables keep
their values), increments `nonfinite_total` and `nonfinite_run`; a finite step resets the
run. The host reads `nonfinite_run` from the metrics to stop after K in a row.
"""
from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from flashtalker_jax.train.mesh import replicated
from flashtalker_jax.train.state import TrainState, split_model

# loss_fn(model, batch, key) -> (scalar loss, {name: scalar metric})
LossFn = Callable[[nnx.Module, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def make_train_step(graphdef: nnx.GraphDef, loss_fn: LossFn, tx: optax.GradientTransformation,
                    schedule: optax.Schedule) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """The un-jitted step (jit it with `jit_train_step`)."""

    def train_step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_of(params):
            model = nnx.merge(graphdef, params, state.rest)
            loss, metrics = loss_fn(model, batch, key)
            chex.assert_shape(loss, ())
            return loss, (metrics, split_model(model)[2])

        (loss, (metrics, rest)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        def keep_if_finite(new, old):
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        skipped = (~finite).astype(jnp.int32)
        new_state = state.replace(
            step=state.step + 1,
            params=keep_if_finite(params, state.params),
            rest=keep_if_finite(rest, state.rest),
            opt_state=keep_if_finite(opt_state, state.opt_state),
            nonfinite_total=state.nonfinite_total + skipped,
            nonfinite_run=jnp.where(finite, 0, state.nonfinite_run + 1),
        )
        out = {"loss": loss, "grad_norm": grad_norm, "lr": schedule(state.step),
               "skipped": skipped, "nonfinite_run": new_state.nonfinite_run,
               "nonfinite_total": new_state.nonfinite_total, **metrics}
        return new_state, out

    return train_step


def jit_train_step(train_step, mesh: Mesh, state_shardings: Any, batch_sharding: Any):
    """jit with the state sharded by the mesh rule, batch over "data", metrics replicated."""
    return jax.jit(train_step, in_shardings=(state_shardings, batch_sharding),
                   out_shardings=(state_shardings, replicated(mesh)), donate_argnums=0)
