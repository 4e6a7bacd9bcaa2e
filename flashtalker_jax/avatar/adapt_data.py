"""Training batches of adaptation: `AdaptIterator` yields shuffled batches of the frames
frames.load_frames holds in memory, plus `refine` (B,) bool, True from `refine_start` on,
(with `random_background`) `background` (B, 3) a random colour per row, and checkpoints
its position.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from flashtalker_jax.train.data import ArrayBatchIterator


class AdaptIterator:
    """Endless shuffled batches of the in-memory frames, plus the refine flag per row."""

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, seed: int,
                 refine_start: int, process_index: int = 0, process_count: int = 1,
                 random_background: bool = False):
        self._inner = ArrayBatchIterator(arrays, batch_size, seed, process_index, process_count)
        self._refine_start = int(refine_start)
        self._step = 0
        self._seed = (int(seed), int(process_index))
        self._random_background = random_background

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._inner)
        rows = len(batch["slot"])
        batch["refine"] = np.full(rows, 0 <= self._refine_start <= self._step, bool)
        if self._random_background:
            # A colour per row from (seed, process, step): deterministic, and resumed exactly.
            rng = np.random.default_rng([*self._seed, self._step])
            batch["background"] = rng.uniform(size=(rows, 3)).astype(np.float32)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        return {"inner": self._inner.get_state(), "step": self._step}

    def set_state(self, state: dict) -> None:
        self._inner.set_state(state["inner"])
        self._step = int(state["step"])
