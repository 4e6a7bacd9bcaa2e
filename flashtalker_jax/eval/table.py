"""The paper-style table: one row per driving, one column per metric, arrows for the
better direction, unavailable metrics marked "n/a" (with the reasons listed below)."""
from __future__ import annotations

from flashtalker_jax.metrics.registry import METRICS
from flashtalker_jax.utils.report import format_table

ARROWS = {"higher": "↑", "lower": "↓", "closer to 0": "→0"}
UNAVAILABLE = "n/a"


def header(name: str) -> str:
    spec = next(s for s in METRICS if s.name == name)
    return f"{name}{ARROWS[spec.better]}"


def metric_table(rows: dict[str, dict], columns: list[str]) -> str:
    """rows {driving: registry.report_entries(...)} -> table text; reasons follow the table,
    one line per distinct reason, naming the rows and metrics it applies to."""
    body, reasons = [], {}
    for driving, entries in rows.items():
        line = {"driving": driving}
        for name in columns:
            entry = entries[name]
            line[header(name)] = entry["value"] if entry["available"] else UNAVAILABLE
            if not entry["available"]:
                reasons.setdefault(entry["reason"], []).append((driving, name))
        body.append(line)
    text = format_table(body, ["driving"] + [header(n) for n in columns])
    notes = [f"  {UNAVAILABLE} {', '.join(_compact(where, len(rows)))}: {why}"
             for why, where in reasons.items()]
    return text + ("\n" + "\n".join(notes) if notes else "")


def _compact(where: list[tuple[str, str]], n_rows: int) -> list[str]:
    """(row, metric) pairs -> the metrics when every table row shares them, else 'row:metric'."""
    rows = {row for row, _ in where}
    metrics = sorted({metric for _, metric in where})
    if len(rows) == n_rows and len(rows) * len(metrics) == len(where):
        return metrics
    return [f"{row}:{metric}" for row, metric in where]
