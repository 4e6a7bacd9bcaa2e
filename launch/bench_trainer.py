"""Trainer overhead and checkpoint latency on the toy task (single process).

Compares time per step of `fit` (non-finite guard, metrics every log_every steps, progress bar,
iterator + global batch assembly) with a bare jitted loop (plain optax step, batches
device_put directly), on the same model and batches; both exclude compilation (timing
starts after `warmup` steps, with the device synchronised at both ends). Then measures how
long the loop is blocked by each checkpoint save, async and synchronous.

    python launch/bench_trainer.py --report bench_trainer.json
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

from flashtalker_jax.config import load_config
from flashtalker_jax.train.mesh import batch_sharding, make_mesh
from flashtalker_jax.train.optim import make_optimizer
from flashtalker_jax.train.state import init_state, split_model
from flashtalker_jax.train.tasks import get_task
from flashtalker_jax.train.trainer import fit
from flashtalker_jax.utils.report import print_table, write_report


def bench_config(args, *extra):
    return load_config("train_toy", [
        f"--config.task.hidden={tuple([args.width] * args.depth)}", f"--config.task.input_dim={args.width // 4}",
        f"--config.task.output_dim={args.width // 4}", f"--config.task.batch_size={args.batch}",
        f"--config.task.num_examples={args.batch * 32}", f"--config.train.steps={args.steps}", *extra])


def timed_window(warmup: int, steps: int):
    """after_step hook recording wall time between step `warmup` and the last step."""
    marks = {}

    def hook(step, state):
        if step in (warmup, steps):
            jax.block_until_ready(state)
            marks[step] = time.perf_counter()
    return hook, marks


def trainer_step_seconds(args, run_dir: Path, *extra) -> tuple[float, list[float]]:
    config = bench_config(args, *extra)
    hook, marks = timed_window(args.warmup, args.steps)
    result = fit(get_task(config.task), config, run_dir, after_step=hook)
    return (marks[args.steps] - marks[args.warmup]) / (args.steps - args.warmup), result.save_block_seconds


def bare_step_seconds(args) -> float:
    config = bench_config(args)
    task = get_task(config.task)
    tx, _ = make_optimizer(config.optim, config.train.steps)
    mesh = make_mesh()
    state = jax.jit(lambda k: init_state(task.make_model, tx, k))(jax.random.key(0))
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0))))
    params, opt_state, rest = state.params, state.opt_state, state.rest

    def plain_step(params, opt_state, batch, t):
        key = jax.random.fold_in(jax.random.key(1), t)

        def loss_of(p):
            return task.loss_fn(nnx.merge(graphdef, p, rest), batch, key)[0]
        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, t + 1

    step = jax.jit(plain_step, donate_argnums=(0, 1, 3))
    data, sharding, t = task.make_data(0, 1), batch_sharding(mesh), jax.numpy.zeros((), jax.numpy.int32)
    for i in range(args.steps):
        if i == args.warmup:
            jax.block_until_ready(params)
            start = time.perf_counter()
        batch = jax.device_put(next(data), sharding)
        params, opt_state, t = step(params, opt_state, batch, t)
    jax.block_until_ready(params)
    return (time.perf_counter() - start) / (args.steps - args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--report", help="write the JSON report here")
    args = parser.parse_args()

    no_ckpt = f"--config.train.checkpoint_every={args.steps * 10}"
    ckpt = f"--config.train.checkpoint_every={args.checkpoint_every}"
    bare, trainer, blocks = [], [], {"async": [], "sync": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            bare.append(bare_step_seconds(args))
            trainer.append(trainer_step_seconds(args, Path(tmp) / f"plain{r}", no_ckpt)[0])
            for mode, flag in (("async", "True"), ("sync", "False")):
                _, saves = trainer_step_seconds(args, Path(tmp) / f"{mode}{r}", ckpt,
                                                f"--config.train.async_checkpoint={flag}")
                blocks[mode] += saves[:-1]  # the last save is the final one, after the timed window
        n_params = sum(np.prod(x.shape) for x in jax.tree.leaves(split_model(
            get_task(bench_config(args).task).make_model(nnx.Rngs(0)))[1]))
    # Best of the interleaved repeats: other load on the machine only ever adds time.
    bare_ms, trainer_ms = min(bare) * 1e3, min(trainer) * 1e3
    median_overhead = 100 * (statistics.median(trainer) / statistics.median(bare) - 1)
    rows = [
        {"measure": "bare jitted loop, ms/step", "ms": bare_ms, "note": f"best of {args.repeats}"},
        {"measure": "trainer (fit), ms/step", "ms": trainer_ms,
         "note": f"overhead {100 * (trainer_ms / bare_ms - 1):+.1f}% (medians: {median_overhead:+.1f}%)"},
        *({"measure": f"{mode} save, loop blocked", "ms": 1e3 * statistics.median(b),
           "note": f"max {1e3 * max(b):.1f} ms over {len(b)} saves"} for mode, b in blocks.items()),
    ]
    print_table(rows)
    write_report(args.report, {
        "config": {k: v for k, v in vars(args).items() if k != "report"}, "parameters": int(n_params),
        "step_ms": {"bare": [1e3 * s for s in bare], "trainer": [1e3 * s for s in trainer]},
        "overhead_percent_best": 100 * (trainer_ms / bare_ms - 1), "overhead_percent_median": median_overhead,
        "save_block_ms": {mode: [1e3 * s for s in b] for mode, b in blocks.items()}, "table": rows})


if __name__ == "__main__":
    main()
