"""argparse types of every numeric and list option, so a bad value is a usage error naming the
option ("argument --size: expected a positive integer, got '0'") instead of a traceback
from deep inside a job. Plain Python: `flashtalker --help` imports no numpy or JAX.

Use them as `type=`: positive_int (sizes, batches, steps, counts), non_negative_int (indices,
"0 = all" limits), seed, positive_float (seconds, fps), non_negative_float (guidance),
degrees (camera turns, -180..180), count_list ("10k,50k,1m": positive integers, k/m suffixes), name_list ("a,b").
"""
from __future__ import annotations

import argparse
import math

SEED_MAX = 2 ** 32 - 1  # JAX's default PRNG key holds a uint32 seed


def _refuse(what: str, text: str):
    return argparse.ArgumentTypeError(f"expected {what}, got {text!r}")


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        raise _refuse(what, text) from None


def positive_int(text: str) -> int:
    value = _int(text, "a positive integer")
    if value < 1:
        raise _refuse("a positive integer", text)
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "an integer >= 0")
    if value < 0:
        raise _refuse("an integer >= 0", text)
    return value


def seed(text: str) -> int:
    what = f"a seed (an integer in 0..{SEED_MAX})"
    value = _int(text, what)
    if not 0 <= value <= SEED_MAX:
        raise _refuse(what, text)
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except (ValueError, TypeError):
        raise _refuse(what, text) from None
    if not math.isfinite(value):
        raise _refuse(what, text)
    return value


def positive_float(text: str) -> float:
    value = _float(text, "a positive number")
    if value <= 0:
        raise _refuse("a positive number", text)
    return value


def non_negative_float(text: str) -> float:
    value = _float(text, "a number >= 0")
    if value < 0:
        raise _refuse("a number >= 0", text)
    return value


def degrees(text: str) -> float:
    what = "an angle in degrees, -180..180"
    value = _float(text, what)
    if not -180.0 <= value <= 180.0:
        raise _refuse(what, text)
    return value


_SCALE = {"k": 1_000, "m": 1_000_000}
_COUNTS = "a comma-separated list of positive integers (k/m suffixes allowed, e.g. 10k,1m)"


def count_list(text: str) -> list[int]:
    """'10k, 1.5m,7' -> [10000, 1500000, 7]; empty items, zero and negatives are refused."""
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            value = float(item[:-1]) * _SCALE[item[-1]] if item and item[-1] in _SCALE else int(item)
        except ValueError:
            raise _refuse(_COUNTS, text) from None
        if not math.isfinite(value) or value != int(value) or value < 1:
            raise _refuse(_COUNTS, text)
        out.append(int(value))
    return out


def name_list(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; empty items are refused."""
    names = [item.strip() for item in text.split(",")]
    if not all(names):
        raise _refuse("a comma-separated list of names", text)
    return names
