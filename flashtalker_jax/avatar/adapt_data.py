"""Training batches of adaptation: `AdaptIterator` yields shuffled batches of the frames
frames.load_frames holds in memory, plus `refine` (B,) bool, True from `refine_start` on,
and checkpoints its position.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from flashtalker_jax.train.data import ArrayBatchIterator


class AdaptIterator:
    """Endless shuffled batches of the in-memory frames, plus the refine flag per row."""

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, seed: int,
                 refine_start: int, process_index: int = 0, process_count: int = 1):
        self._inner = ArrayBatchIterator(arrays, batch_size, seed, process_index, process_count)
        self._refine_start = int(refine_start)
        self._step = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._inner)
        rows = len(batch["slot"])
        batch["refine"] = np.full(rows, 0 <= self._refine_start <= self._step, bool)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        return {"inner": self._inner.get_state(), "step": self._step}

    def set_state(self, state: dict) -> None:
        self._inner.set_state(state["inner"])
        self._step = int(state["step"])
