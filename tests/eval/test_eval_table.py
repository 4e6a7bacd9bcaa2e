"""The printed table: arrows give the better direction, unavailable metrics read "n/a" and
their reasons follow the table (never a 0 standing in for a missing value)."""
from flashtalker_jax.eval.run import row_entries
from flashtalker_jax.eval.table import metric_table


def test_table_marks_unavailable_metrics_with_reasons():
    rows = {"tracked": row_entries({"psnr": 29.04, "l1": 0.0069}, {"lpips_alex": "unavailable: no weights"}),
            "a2e": row_entries({"psnr": 28.8}, {"l1": "unavailable: test reason"})}
    text = metric_table(rows, ["psnr", "l1", "lpips_alex", "lse_c", "mesh_opening_lag"])
    header, _, tracked, a2e, *notes = text.splitlines()
    assert header.split() == ["driving", "psnr↑", "l1↓", "lpips_alex↓", "lse_c↑", "mesh_opening_lag→0"]
    assert tracked.split() == ["tracked", "29.04", "0.0069", "n/a", "n/a", "n/a"]
    assert a2e.split() == ["a2e", "28.8", "n/a", "n/a", "n/a", "n/a"]
    reasons = "\n".join(notes)
    assert "a2e:l1: unavailable: test reason" in reasons
    assert "tracked:lpips_alex: unavailable: no weights" in reasons
    assert "lse_c: unavailable: not implemented (no code computes it or accepts SyncNet" in reasons
    assert "0.0" not in a2e  # a missing value is never printed as zero
