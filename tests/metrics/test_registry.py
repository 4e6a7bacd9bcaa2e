"""Metric registry: every entry resolves, unavailable metrics are reported as such, never 0."""

import pytest

from flashtalker_jax.metrics import registry


def test_every_implemented_metric_resolves_to_a_function():
    for spec in registry.METRICS:
        if spec.function is None:
            assert spec.name in registry.NOT_IMPLEMENTED
            with pytest.raises(ValueError, match="not implemented"):
                registry.metric_function(spec)
        else:
            assert callable(registry.metric_function(spec)), spec.name
    names = [spec.name for spec in registry.METRICS]
    assert len(names) == len(set(names))


def test_availability_follows_resources(tmp_path):
    task = tmp_path / "face_landmarker.task"
    task.write_bytes(b"x")
    status = registry.availability({"frames": True, "face_landmarker": task,
                                    "lpips_alex": (tmp_path / "absent.pth", task)})
    assert status["psnr"].available and status["lmd_mouth"].available
    assert not status["lve_max_sq_mm2"].available
    assert status["lve_max_sq_mm2"].reason == "unavailable: no meshes given"
    assert not status["lpips_alex"].available and "not found" in status["lpips_alex"].reason
    assert status["lpips_vgg"].reason == "unavailable: no lpips_vgg given"
    for name in ("fid", "fvd", "lse_c", "lse_d"):
        assert not status[name].available and "not implemented" in status[name].reason


def test_report_lists_unavailable_metrics_with_none():
    status = registry.availability({"frames": True})
    entries = registry.report_entries({"psnr": 31.5}, status)
    assert set(entries) == {spec.name for spec in registry.METRICS}
    assert entries["psnr"] == {"value": 31.5, "unit": "dB", "better": "higher", "available": True}
    assert entries["lpips_alex"]["value"] is None
    assert entries["lpips_alex"]["reason"].startswith("unavailable")
    assert entries["ssim"]["reason"] == "unavailable: not computed in this run"
    with pytest.raises(ValueError, match="unregistered"):
        registry.report_entries({"psnr_typo": 1.0}, status)
