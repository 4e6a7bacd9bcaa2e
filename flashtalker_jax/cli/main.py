"""Entry point of `flashtalker`.

Each module in COMMAND_MODULES defines `register(subparsers)`, adding its commands with a
one-line help and `set_defaults(func=handler)`. Modules import heavy dependencies (JAX,
torch-free models, data tools) inside their handlers so `flashtalker --help` stays fast.
Handlers receive `(args, config_overrides)`; `--config.a.b=v` overrides are split off
before argparse sees them. A command that reads a config registers with
`set_defaults(takes_overrides=True)`; any other command refuses overrides here, in one
place, so none is silently ignored.

One vocabulary across commands: `--a2e RUN` is a motion run (pretrain-a2e / adapt-a2e
output), `--batch N` frames per render batch, `--sample-steps N` DDIM steps when sampling
(named after task.sample.steps: training steps are always `--config.train.steps`),
`--resume` on every command that trains, `--config file.py[:preset]` selects a config.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from flashtalker_jax import __version__
from flashtalker_jax.config import split_overrides
from flashtalker_jax.errors import ConfigError, FlashtalkerError

# Order is the order of `flashtalker --help`: the data flow, then benchmarks.
COMMAND_MODULES: list[str] = [
    "flashtalker_jax.cli.head",
    "flashtalker_jax.cli.data",
    "flashtalker_jax.cli.track",
    "flashtalker_jax.cli.train",
    "flashtalker_jax.cli.avatar",
    "flashtalker_jax.cli.e2v",
    "flashtalker_jax.cli.encoder",
    "flashtalker_jax.cli.a2e",
    "flashtalker_jax.cli.pose",
    "flashtalker_jax.cli.speak",
    "flashtalker_jax.cli.eval",
    "flashtalker_jax.cli.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashtalker",
        description="Audio-driven 3D Gaussian talking heads on FLAME (JAX + Pallas).",
    )
    parser.add_argument("--version", action="version", version=f"flashtalker-jax {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """`data synth`, `bench raster`, `adapt`: the command words of parsed arguments."""
    words = [args.command] + [getattr(args, f"{args.command}_command", None)]
    return " ".join(w for w in words if w)


def check_overrides(args: argparse.Namespace, overrides: list[str]) -> None:
    if overrides and not getattr(args, "takes_overrides", False):
        raise ConfigError(f"takes no --config.* overrides (it reads no config file), got {' '.join(overrides)}")


class _ReportedOverflow(logging.Filter):
    """Drops jax.debug.callback's traceback log of the rasterizer's BufferOverflowError: the
    compiled step re-raises it wrapped in a JaxRuntimeError, and the trainer and the eval
    renderer turn that into the error the command prints (the fix named, no traceback).
    Any other failed callback is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info:
            return True
        from flashtalker_jax.render.rasterize import BufferOverflowError

        return not isinstance(record.exc_info[1], BufferOverflowError)


REPORTED_OVERFLOW = _ReportedOverflow()
JAX_CALLBACK_LOGGER = "jax._src.debugging"   # where jax.debug.callback logs a failed callback


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.getLogger(JAX_CALLBACK_LOGGER).addFilter(REPORTED_OVERFLOW)   # idempotent
    rest, overrides = split_overrides(argv)
    parser = build_parser()
    args = parser.parse_args(rest)
    try:
        check_overrides(args, overrides)
        result = args.func(args, overrides)
    except FlashtalkerError as exc:
        print(f"flashtalker {command_name(args)}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flashtalker {command_name(args)}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
