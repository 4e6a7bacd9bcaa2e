"""Progress bars with rate and ETA for long work (tqdm, written to stderr)."""
from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", initial: int = 0, disable: bool = False):
    """A bar showing count, rate and ETA; `disable=True` for non-zero JAX processes."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial,
                disable=disable, dynamic_ncols=True, smoothing=0.1)
