"""Training infrastructure shared by every training job (avatar adaptation, a2e prior, ...).

The project-wide model style is Flax NNX with split/merge around a pure jitted step:

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)   # state.split_model
    def train_step(state, batch):                               # pure: (state, batch) -> (state, metrics)
        def loss_of(params):
            model = nnx.merge(graphdef, params, state.rest)
            return loss_fn(model, batch, key)
        ...
    step = jax.jit(train_step, in_shardings=..., out_shardings=..., donate_argnums=0)

`graphdef` is static Python data; `params`/`rest` (nnx.State pytrees) live in a
`TrainState` together with the optimiser state, step and PRNG key data. That TrainState is
what is sharded (mesh.state_shardings) and what Orbax saves (checkpoint.Checkpointer).
Model code never holds global state or hidden RNG streams: a module takes `rngs:
nnx.Rngs` only in its constructor, and randomness during training comes from the `key`
argument of loss_fn.

To add a training job, write a task (tasks.Task: make_model(rngs), loss_fn(model, batch,
key) -> (loss, metrics), make_data(process_index, process_count) -> checkpointable
iterator) and register it with one line in tasks.TASKS. Then `flashtalker train --config
configs/<job>.py` runs it with sharding, checkpoints, resume, preemption handling,
non-finite guard, logging and multi-host support.

Modules: mesh (mesh and sharding rule), distributed (jax.distributed, global batches),
optim (optax from config), state (TrainState), step (the jitted step), checkpoint (Orbax),
data (iterator protocol, ArrayBatchIterator), metrics (JSONL + TensorBoard), trainer (fit),
tasks (registry), toy (the toy regression task).
"""
