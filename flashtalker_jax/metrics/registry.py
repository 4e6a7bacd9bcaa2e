"""Every evaluation metric, what it needs, and whether it can be computed in this run.

Reports list every metric here: computed ones with their value, the others with
`"value": None` and the reason, so a missing metric is never mistaken for a zero.

Resources a metric may need (keys of the `resources` mapping given to `availability`):
- "frames":          generated and ground-truth frames of the same clip
- "face_landmarker": path of MediaPipe's face_landmarker.task
- "lpips_alex" / "lpips_vgg": (torchvision backbone path, lpips lin path)
- "meshes":          generated and ground-truth FLAME vertex sequences (audio-to-motion eval)
- "flame_cameras":   FLAME landmark points and cameras of both videos (both are renders)
- "speech":          the driving audio (speech/silence frames) and a mouth-opening curve
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric: where its function lives ("module:function", None = not implemented)."""

    name: str
    function: str | None
    unit: str
    better: str  # "higher", "lower" or "closer to 0"
    needs: tuple[str, ...]
    description: str


@dataclasses.dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""


_M = "flashtalker_jax.metrics."
METRICS = (
    MetricSpec("psnr", _M + "image:psnr", "dB", "higher", ("frames",),
               "peak signal-to-noise ratio"),
    MetricSpec("ssim", _M + "image:ssim", "", "higher", ("frames",),
               "SSIM, Gaussian window (Wang 2004)"),
    MetricSpec("ms_ssim", _M + "image:ms_ssim", "", "higher", ("frames",),
               "5-scale MS-SSIM (Wang 2003)"),
    MetricSpec("l1", _M + "image:mean_abs_error", "", "lower", ("frames",),
               "mean absolute pixel error, values in [0, 1]"),
    MetricSpec("mouth_psnr", _M + "image:psnr", "dB", "higher", ("frames", "flame_cameras"),
               "PSNR over the box of the projected FLAME lips"),
    MetricSpec("lpips_alex", _M + "lpips:lpips_distance", "", "lower", ("frames", "lpips_alex"),
               "LPIPS v0.1, AlexNet backbone"),
    MetricSpec("lpips_vgg", _M + "lpips:lpips_distance", "", "lower", ("frames", "lpips_vgg"),
               "LPIPS v0.1, VGG16 backbone"),
    MetricSpec("lmd_mouth", _M + "lmd:lmd_mouth", "px", "lower", ("frames", "face_landmarker"),
               "landmark distance over 40 MediaPipe lip points"),
    MetricSpec("lmd_face", _M + "lmd:lmd_face", "px", "lower", ("frames", "face_landmarker"),
               "landmark distance over 468 MediaPipe face points"),
    MetricSpec("lmd_flame", _M + "lmd:lmd", "px", "lower", ("flame_cameras",),
               "landmark distance of projected FLAME landmarks (both videos rendered)"),
    MetricSpec("lmd_flame_mouth", _M + "lmd:lmd", "px", "lower", ("flame_cameras",),
               "landmark distance of the 20 projected FLAME mouth landmarks (iBUG 48-67)"),
    MetricSpec("stability_flame", _M + "stability:stability_score", "", "lower",
               ("flame_cameras",), "stability score on the projected FLAME nose landmarks"),
    MetricSpec("stability", _M + "stability:stability_score", "", "lower",
               ("frames", "face_landmarker"), "GaussianHeadTalk stability score (our reading)"),
    MetricSpec("aue_all", _M + "au:action_unit_error", "", "lower", ("frames", "face_landmarker"),
               "mean blendshape error, 51 MediaPipe blendshapes"),
    MetricSpec("aue_upper", _M + "au:action_unit_error", "", "lower", ("frames", "face_landmarker"),
               "mean blendshape error, upper face"),
    MetricSpec("aue_lower", _M + "au:action_unit_error", "", "lower", ("frames", "face_landmarker"),
               "mean blendshape error, lower face"),
    MetricSpec("video_opening_pearson", _M + "lip:pearson", "", "higher",
               ("frames", "face_landmarker"), "correlation of inner-lip opening with ground truth"),
    MetricSpec("video_opening_lag", _M + "lip:peak_lag", "frames", "closer to 0",
               ("frames", "face_landmarker"), "lag of the opening cross-correlation peak"),
    MetricSpec("speech_opening_gap_mm", _M + "lip:speech_opening_gap", "mm", "higher",
               ("speech",), "FLAME mouth opening in speech minus in silence (lip activity)"),
    MetricSpec("speech_jaw_open_gap", _M + "lip:speech_opening_gap", "", "higher",
               ("speech", "frames", "face_landmarker"),
               "MediaPipe jawOpen blendshape in speech minus in silence (lip activity)"),
    MetricSpec("lve_max_sq_mm2", _M + "lip:lve_max_sq_mm2", "mm^2", "lower", ("meshes",),
               "lip vertex error, max squared error per frame (FaceFormer convention)"),
    MetricSpec("lve_max_l2_mm", _M + "lip:lve_max_l2_mm", "mm", "lower", ("meshes",),
               "lip vertex error, max L2 error per frame"),
    MetricSpec("mve_mm", _M + "lip:mve_mm", "mm", "lower", ("meshes",), "mean vertex error"),
    MetricSpec("fdd_mm2", _M + "lip:fdd_mm2", "mm^2", "closer to 0", ("meshes",),
               "upper-face dynamics deviation (CodeTalker), signed"),
    MetricSpec("mesh_opening_error_mm", _M + "lip:opening_error", "mm", "lower", ("meshes",),
               "mean absolute mouth-opening error"),
    MetricSpec("mesh_opening_pearson", _M + "lip:pearson", "", "higher", ("meshes",),
               "correlation of mouth opening with ground truth"),
    MetricSpec("mesh_opening_lag", _M + "lip:peak_lag", "frames", "closer to 0", ("meshes",),
               "lag of the mouth-opening cross-correlation peak"),
    MetricSpec("fid", None, "", "lower", ("frames",), "Frechet Inception Distance"),
    MetricSpec("fvd", None, "", "lower", ("frames",), "Frechet Video Distance"),
    MetricSpec("lse_c", None, "", "higher", ("frames",), "SyncNet lip-sync confidence"),
    MetricSpec("lse_d", None, "", "lower", ("frames",), "SyncNet lip-sync distance"),
)

NOT_IMPLEMENTED = {
    "fid": "unavailable: not implemented (no code computes it or accepts Inception-v3 weights)",
    "fvd": "unavailable: not implemented (no code computes it or accepts I3D weights)",
    "lse_c": "unavailable: not implemented (no code computes it or accepts SyncNet weights)",
    "lse_d": "unavailable: not implemented (no code computes it or accepts SyncNet weights)",
}


def metric_function(spec: MetricSpec):
    """The callable behind a spec (imported on demand: some pull in MediaPipe or Flax)."""
    if spec.function is None:
        raise ValueError(f"metric {spec.name} is not implemented: {NOT_IMPLEMENTED[spec.name]}")
    module, name = spec.function.split(":")
    return getattr(importlib.import_module(module), name)


def _resource_missing(key: str, value) -> str | None:
    """Why a resource is unusable, or None when it is there."""
    if value is None or value is False:
        return f"no {key} given"
    paths = value if isinstance(value, (tuple, list)) else (value,)
    for path in paths:
        if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
            return f"{key} file not found: {os.fspath(path)}"
        if path is None:
            return f"{key} is incomplete"
    return None


def availability(resources: Mapping[str, object]) -> dict[str, Availability]:
    """{metric name: Availability} for the given resources (see module doc for keys)."""
    result = {}
    for spec in METRICS:
        if spec.function is None:
            result[spec.name] = Availability(False, NOT_IMPLEMENTED[spec.name])
            continue
        problems = [p for key in spec.needs
                    if (p := _resource_missing(key, resources.get(key))) is not None]
        result[spec.name] = Availability(not problems, "; ".join(
            ["unavailable: " + problems[0]] + problems[1:]) if problems else "")
    return result


def report_entries(values: Mapping[str, float], status: Mapping[str, Availability]) -> dict:
    """One report entry per registered metric: computed values, or None plus the reason."""
    known = {spec.name for spec in METRICS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"values for unregistered metrics: {unknown}")
    entries = {}
    for spec in METRICS:
        if spec.name in values:
            entries[spec.name] = {"value": float(values[spec.name]), "unit": spec.unit,
                                  "better": spec.better, "available": True}
        else:
            reason = status[spec.name].reason if not status[spec.name].available else \
                "unavailable: not computed in this run"
            entries[spec.name] = {"value": None, "unit": spec.unit, "better": spec.better,
                                  "available": False, "reason": reason}
    return entries
