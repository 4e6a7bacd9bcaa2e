"""Metrics logging: JSON lines (metrics.jsonl) and TensorBoard event files (tb/, tb_events).

Only process 0 writes; other processes get a disabled logger.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping

from flashtalker_jax.train.tb_events import ScalarEventWriter


class MetricsLogger:
    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True):
        self.enabled = enabled
        self._jsonl = self._tb = None
        if enabled:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
            self._tb = ScalarEventWriter(run_dir / "tb")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        record = {"step": step, **{k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        self._tb.add_scalars(step, {f"train/{name}": value for name, value in values.items()})
        self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
