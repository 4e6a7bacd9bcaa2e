"""Checkpointable data iterators.

The trainer accepts any iterator of process-local batches that also has
`get_state() -> dict | bytes` and `set_state(state)`: grain's DatasetIterator (dict state)
and DataLoaderIterator (bytes state) qualify, as does `ArrayBatchIterator` below.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

import numpy as np

from flashtalker_jax.errors import ConfigError


class DataIterator(Protocol):
    def __next__(self) -> Any: ...
    def get_state(self) -> dict | bytes: ...
    def set_state(self, state: dict | bytes) -> None: ...


class ArrayBatchIterator:
    """Endless shuffled batches over in-memory arrays; yields this process's rows.

    Every process walks the same global order (a permutation per epoch seeded by
    (seed, epoch)) and takes rows [i*B/n, (i+1)*B/n) of each global batch of B, so the
    global batch does not depend on the number of processes. A partial last batch of an
    epoch is dropped. State: {"epoch", "batch"} (JSON), the same on every process, so a
    checkpoint resumes on any process count (`global_state`, train/checkpoint.py).
    """

    global_state = True

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1):
        sizes = {len(a) for a in arrays.values()}
        if len(sizes) != 1:
            raise ConfigError(f"arrays have different lengths {sorted(sizes)}")
        self._n = sizes.pop()
        if global_batch_size % process_count or global_batch_size > self._n:
            raise ConfigError(f"global batch {global_batch_size} must divide over {process_count} "
                              f"processes and fit in {self._n} examples")
        self._arrays = dict(arrays)
        self._batch, self._seed = global_batch_size, seed
        self._local = global_batch_size // process_count
        self._offset = process_index * self._local
        self._epoch, self._index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self._seed, epoch)).permutation(self._n)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if (self._index + 1) * self._batch > self._n:
            self._epoch, self._index = self._epoch + 1, 0
            self._order = self._permutation(self._epoch)
        start = self._index * self._batch + self._offset
        rows = self._order[start:start + self._local]
        self._index += 1
        return {k: a[rows] for k, a in self._arrays.items()}

    def get_state(self) -> dict:
        return {"epoch": self._epoch, "batch": self._index}

    def set_state(self, state: dict) -> None:
        self._epoch, self._index = int(state["epoch"]), int(state["batch"])
        self._order = self._permutation(self._epoch)
