"""JSON reports, tables and atomic writes."""
import json
import math

import pytest

from flashtalker_jax.utils.files import atomic_path
from flashtalker_jax.utils.report import format_table, write_report


def test_report_records_environment_and_handles_nonfinite(tmp_path):
    path = write_report(tmp_path / "r.json", {"psnr": 30.5, "lpips": math.nan})
    data = json.loads(path.read_text())
    assert data["psnr"] == 30.5 and data["lpips"] == "nan"
    assert {"jax", "device_kind", "date"} <= set(data["environment"])


def test_table_aligns_columns():
    text = format_table([{"name": "a", "fps": 123.456}, {"name": "long-name", "fps": 1.0}])
    lines = text.splitlines()
    assert lines[0].startswith("name") and "123.5" in lines[2]
    assert len({len(line.rstrip()) <= len(lines[1]) for line in lines}) == 1


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]
