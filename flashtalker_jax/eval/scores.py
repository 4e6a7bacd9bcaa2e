"""Metric values of one driving against its reference, from flashtalker_jax.metrics.

Each function returns (values {registry name: float}, reasons {registry name: why it is
unavailable}); a value that cannot be computed honestly (too few frames, no face found,
a constant curve) goes to reasons, never to values as 0 or NaN.

FLAME landmark layout (smplx order, see flame/landmarks.py): iBUG-68 point k is static
point k - 17, so the mouth (iBUG 48-67) is 31-50 and the nose (iBUG 27-35) is 10-18.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from flashtalker_jax.audio.io import SAMPLE_RATE
from flashtalker_jax.metrics import au, image, landmarks, lip, lmd, stability

FLAME_MOUTH = tuple(range(48 - 17, 68 - 17))
FLAME_NOSE = tuple(range(27 - 17, 36 - 17))
MAX_LAG = 6
MS_SSIM_MIN_SIDE = 160  # 5 scales of an 11-tap window: (11 - 1) * 2^4
JAW_OPEN = landmarks.BLENDSHAPE_NAMES.index("jawOpen")


def _put(values: dict, reasons: dict, name: str, value, why: str) -> None:
    value = float(value)
    if math.isfinite(value):
        values[name] = value
    else:
        reasons[name] = f"unavailable: {why}"


def image_scores(pred: np.ndarray, gt: np.ndarray, boxes, lpips_models: dict) -> tuple[dict, dict, dict]:
    """pred, gt (T, S, S, 3) in [0, 1]; boxes [(r0, r1, c0, c1)] per frame (mouth);
    lpips_models {metric name: LPIPS model}. Also returns per-frame psnr (T,)."""
    values, reasons = {}, {}
    p, g = jnp.asarray(pred), jnp.asarray(gt)
    per_frame_psnr = np.asarray(image.psnr(p, g, 1.0))
    _put(values, reasons, "psnr", np.mean(per_frame_psnr), "a frame is identical to its ground truth")
    values["ssim"] = float(jnp.mean(image.ssim(p, g, 1.0)))
    values["l1"] = float(jnp.mean(image.mean_abs_error(p, g)))
    if min(pred.shape[1:3]) > MS_SSIM_MIN_SIDE:
        values["ms_ssim"] = float(jnp.mean(image.ms_ssim(p, g, 1.0)))
    else:
        reasons["ms_ssim"] = (f"unavailable: 5-scale MS-SSIM needs a short side > {MS_SSIM_MIN_SIDE}"
                              f" px; frames are {pred.shape[1]} px")
    # Box sizes differ per frame: numpy here, a jitted psnr would compile once per shape.
    with np.errstate(divide="ignore"):  # an identical box is +inf dB, reported below
        mouth = [10 * np.log10(1.0 / np.mean((pred[i, r0:r1, c0:c1] - gt[i, r0:r1, c0:c1]) ** 2))
                 for i, (r0, r1, c0, c1) in enumerate(boxes)]
    _put(values, reasons, "mouth_psnr", np.mean(mouth), "a mouth box is identical to the ground truth")
    for name, model in lpips_models.items():
        from flashtalker_jax.metrics.lpips import lpips_distance

        values[name] = float(jnp.mean(lpips_distance(model, p, g, normalize=True)))
    return values, reasons, {"psnr": per_frame_psnr}


def flame_scores(pred_points: np.ndarray, gt_points: np.ndarray, fps: float,
                 landmark_distance: bool = True) -> tuple[dict, dict]:
    """Projected FLAME landmarks (T, 68, 2) px of two renders: LMD (all / mouth) and the
    stability score on the nose points (`landmark_distance=False`: stability only)."""
    values, reasons = {}, {}
    if landmark_distance:
        values["lmd_flame"] = float(lmd.lmd(pred_points, gt_points))
        values["lmd_flame_mouth"] = float(lmd.lmd(pred_points, gt_points, FLAME_MOUTH))
    if pred_points.shape[0] >= 3:
        nose = list(FLAME_NOSE)
        values["stability_flame"] = float(stability.stability_score(pred_points[:, nose], gt_points[:, nose], fps))
    else:
        reasons["stability_flame"] = f"unavailable: needs >= 3 frames, got {pred_points.shape[0]}"
    return values, reasons


def nose_motion_px(points: np.ndarray) -> np.ndarray:
    """(T, L, 2) FLAME landmarks -> (T - 1,) mean frame-to-frame nose motion in pixels."""
    nose = points[:, list(FLAME_NOSE)]
    return np.linalg.norm(np.diff(nose, axis=0), axis=-1).mean(axis=1)


def _opening_curves(pred: np.ndarray, gt: np.ndarray, prefix: str, values: dict, reasons: dict) -> None:
    """Pearson correlation and cross-correlation peak lag of two (T,) opening curves."""
    names = (f"{prefix}_opening_pearson", f"{prefix}_opening_lag")
    if len(pred) < MAX_LAG + 2:
        for name in names:
            reasons[name] = f"unavailable: needs >= {MAX_LAG + 2} frames, got {len(pred)}"
        return
    if min(np.std(pred), np.std(gt)) < 1e-6:
        for name in names:
            reasons[name] = "unavailable: an opening curve is constant (no correlation to measure)"
        return
    values[names[0]] = float(lip.pearson(jnp.asarray(pred), jnp.asarray(gt)))
    values[names[1]] = float(lip.peak_lag(jnp.asarray(pred), jnp.asarray(gt), MAX_LAG))


def mesh_scores(pred_v, gt_v, pred_open, gt_open, neutral, lip_ids, upper_ids) -> tuple[dict, dict]:
    """Lip metrics on pose-free FLAME meshes (motion.evaluate.compare, eval-a2e's metrics)."""
    from flashtalker_jax.motion.evaluate import compare

    values, reasons = {}, {}
    result = compare(pred_v, gt_v, pred_open, gt_open, neutral, lip_ids, upper_ids)
    for name in ("lve_max_sq_mm2", "lve_max_l2_mm", "mve_mm", "fdd_mm2"):
        _put(values, reasons, name, result[name], "not finite")
    _put(values, reasons, "mesh_opening_error_mm", result["opening_error_mm"], "not finite")
    _opening_curves(np.asarray(pred_open), np.asarray(gt_open), "mesh", values, reasons)
    return values, reasons


def mediapipe_scores(pred, gt, fps: float, compare_faces: bool = True) -> tuple[dict, dict]:
    """MediaPipe tracks (metrics.landmarks.FaceTrack) of the render and its reference video:
    stability always, LMD / AUE / inner-lip opening when `compare_faces` (same speech)."""
    values, reasons = {}, {}
    try:
        terms = stability.stability_from_landmarks(pred.landmarks, gt.landmarks, fps)
        values["stability"] = float(terms["score"])
    except ValueError as exc:
        reasons["stability"] = f"unavailable: {exc}"
    if not compare_faces:
        return values, reasons
    both = pred.found & gt.found
    why = f"MediaPipe found a face in {int(both.sum())} of {len(both)} frame pairs"
    _put(values, reasons, "lmd_mouth", lmd.lmd_mouth(pred.landmarks, gt.landmarks), why)
    _put(values, reasons, "lmd_face", lmd.lmd_face(pred.landmarks, gt.landmarks), why)
    for group, value in au.aue(pred.blendshapes, gt.blendshapes).items():
        _put(values, reasons, f"aue_{group}", value, why)
    if both.all():
        openings = [np.asarray(lip.mouth_opening(jnp.asarray(t.landmarks[..., :2]), landmarks.INNER_LIP_UPPER,
                                                 landmarks.INNER_LIP_LOWER)) for t in (pred, gt)]
        _opening_curves(*openings, "video", values, reasons)
    else:
        for name in ("video_opening_pearson", "video_opening_lag"):
            reasons[name] = f"unavailable: {why}; the opening curve needs every frame"
    return values, reasons


def speech_scores(waveform: np.ndarray, mouth_mm: np.ndarray, fps: float, faces=None) -> tuple[dict, dict]:
    """Lip activity without ground truth: opening in speech minus in silence (FLAME mouth
    opening in mm; MediaPipe jawOpen on the frames when `faces` is given)."""
    from flashtalker_jax.motion.evaluate import speech_frames

    values, reasons = {}, {}
    speaking = speech_frames(waveform, SAMPLE_RATE, len(mouth_mm), fps)
    why = f"needs speech and silent frames; {int(speaking.sum())} of {len(speaking)} frames are speech"
    _put(values, reasons, "speech_opening_gap_mm", lip.speech_opening_gap(mouth_mm, speaking), why)
    if faces is not None:
        if faces.found.all():
            _put(values, reasons, "speech_jaw_open_gap",
                 lip.speech_opening_gap(faces.blendshapes[:, JAW_OPEN], speaking), why)
        else:
            reasons["speech_jaw_open_gap"] = (f"unavailable: MediaPipe found a face in "
                                              f"{int(faces.found.sum())} of {len(faces.found)} frames")
    return values, reasons
