"""`flashtalker eval` as a function: drive the avatar, render, score, table, PNGs, report.

Self-reenactment (`setting="self"`): the identity's held-out frames, driven by their
tracked FLAME parameters ("tracked") and, with a motion run, by expressions predicted from
their own audio ("a2e"), compared with the ground-truth frames.
Cross-reenactment (`setting="cross"`): the avatar speaks other clips (speech files or
other identities' VHAP folders) through the motion run, on its own tracked head motion.
There are no ground-truth frames, so only stability (against the video the head motion
comes from), lip activity, and lip metrics against the clip's own tracked motion (VHAP
sources) are computed; the rest is reported unavailable with the reason. Cross needs no
identity folder (`data=None`): the avatar folder's stored pose track and camera are
replayed as `speak` replays them (then MediaPipe stability has no video to compare with).
Self needs `data`: the held-out ground-truth frames.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from flashtalker_jax.composite.real import is_real_avatar
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.eval import drive, plots, scores
from flashtalker_jax.eval.render import DRIVE_KEYS, EvalRenderer, load_eval_renderer
from flashtalker_jax.eval.table import metric_table
from flashtalker_jax.metrics import registry

SETTINGS = ("self", "cross")
IMAGE_METRICS = ("psnr", "ssim", "ms_ssim", "lpips_alex", "lpips_vgg", "l1", "mouth_psnr")
FACE_METRICS = ("lmd_mouth", "lmd_face", "aue_all", "aue_upper", "aue_lower",
                "video_opening_pearson", "video_opening_lag")
MEDIAPIPE_METRICS = FACE_METRICS + ("stability", "speech_jaw_open_gap")
FLAME_PAIR_METRICS = ("lmd_flame", "lmd_flame_mouth", "stability_flame")
MESH_METRICS = ("lve_max_sq_mm2", "lve_max_l2_mm", "mve_mm", "fdd_mm2", "mesh_opening_error_mm",
                "mesh_opening_pearson", "mesh_opening_lag")
SPEECH_METRICS = ("speech_opening_gap_mm", "speech_jaw_open_gap")
# Columns of the printed table (the JSON report holds every registered metric).
TABLE_COLUMNS = {
    "self": ["psnr", "ssim", "ms_ssim", "lpips_alex", "l1", "mouth_psnr", "lmd_flame_mouth",
             "lmd_mouth", "stability", "stability_flame", "aue_all", "lve_max_l2_mm",
             "mesh_opening_pearson", "speech_opening_gap_mm", "fid", "lse_c"],
    "cross": ["psnr", "lmd_mouth", "stability", "stability_flame", "lve_max_l2_mm",
              "mesh_opening_pearson", "mesh_opening_lag", "speech_opening_gap_mm",
              "speech_jaw_open_gap", "fid", "fvd", "lse_c", "lse_d"],
}
PIXELS_FROM = {
    "self": "torso/background from the ground-truth frame outside the dilated head mask; the head and the seam "
            "(the removed region) are rendered and inpainted: score the head box and the neck ring",
    "cross": "torso/background from the identity's recorded frames (replayed) outside the dilated head mask; "
             "the head and the seam are rendered and inpainted",
}
NO_GT_FRAMES = ("unavailable: cross-reenactment has no ground-truth frames (the identity never "
                "said this audio)")
NO_POSE_VIDEO = ("unavailable: no video of the pose source (pass --data, the identity's VHAP "
                 "folder, to compare with its frames)")
BY_CONSTRUCTION = ("unavailable: driven by the ground-truth track itself, identical by "
                   "construction")


def base_reasons(setting: str, landmarker: Path | None, lpips_reasons: dict) -> dict[str, str]:
    """Why metrics are unavailable for every row of this run."""
    reasons = dict(lpips_reasons)
    if landmarker is None:
        for name in MEDIAPIPE_METRICS:
            reasons[name] = ("unavailable: no MediaPipe face_landmarker.task (pass --landmarker "
                             "or put it at ../shared/data/models/)")
    if setting == "cross":
        for name in IMAGE_METRICS + FACE_METRICS + ("lmd_flame", "lmd_flame_mouth"):
            reasons[name] = NO_GT_FRAMES
    return reasons


def row_entries(values: dict, reasons: dict) -> dict:
    """Registry entries of one row: computed values, else the reason, else the registry's."""
    status = registry.availability({})
    status.update({k: registry.Availability(False, v) for k, v in reasons.items() if k not in values})
    return registry.report_entries(values, status)


@dataclasses.dataclass(frozen=True)
class Context:
    """What every driving of one run is compared with. ref_points: reference FLAME
    landmarks ((T, L, 2) px, (T, L, 3) world); ref_faces: MediaPipe track of the reference
    frames or None; boxes: mouth box per frame (self); mesh_ids: (neutral (V, 3), lip ids,
    upper-face ids) for the lip metrics."""
    setting: str
    ref: drive.Reference
    ref_points: tuple
    ref_faces: object
    boxes: list
    lpips_models: dict
    landmarker: Path | None
    mesh_ids: tuple
    base_reasons: dict
    compositor: object = None   # composite/real.Compositor: real-footage avatars, frames given
    reference_render: object = None  # Rendered of the reference track (real avatars): its alpha
                                     # is the frames' own heads, and it is the "tracked" driving


def score_driving(renderer: EvalRenderer, ctx: Context, driving: drive.Driving,
                  show_progress: bool = True) -> dict:
    """Render one driving and compute every metric it allows: {values, reasons, rgb, curves}.

    Lip metrics compare pose-free meshes with the driving's ground-truth motion: the
    reference track (self) or the driving clip's own track (cross, VHAP sources)."""
    from flashtalker_jax.metrics.landmarks import track_faces

    ref, setting = ctx.ref, ctx.setting
    is_reference = setting == "self" and all(np.array_equal(driving.track[k], ref.track[k])
                                             for k in DRIVE_KEYS)
    if is_reference and ctx.reference_render is not None:
        rendered = ctx.reference_render   # already rendered for the compositor's own heads
    else:
        rendered = renderer.render(driving.track, ref.viewmat, ref.K, desc=driving.name,
                                   show_progress=show_progress)
    if ctx.compositor is not None:
        from flashtalker_jax.composite.real import composite_frames

        own_heads = ctx.reference_render.alpha > 0.5
        rendered = dataclasses.replace(rendered, rgb=composite_frames(ctx.compositor, rendered.rgb, rendered.alpha,
                                                                      ref.gt, own_heads))
    values, reasons = {}, dict(ctx.base_reasons)

    def add(result):
        values.update(result[0])
        reasons.update(result[1])

    curves = {"mouth_mm": rendered.mouth_mm, "nose_motion_px": scores.nose_motion_px(rendered.landmarks)}
    if setting == "self":
        img_values, img_reasons, per_frame = scores.image_scores(rendered.rgb, ref.gt, ctx.boxes,
                                                                 ctx.lpips_models)
        add((img_values, img_reasons))
        curves.update(per_frame)
    regions = None
    if setting == "self" and ctx.compositor is not None:
        regions = region_table(rendered.rgb, ref, ctx.lpips_models)
    if is_reference:
        reasons.update({k: BY_CONSTRUCTION for k in FLAME_PAIR_METRICS + MESH_METRICS})
    else:
        add(scores.flame_scores(rendered.landmarks, ctx.ref_points[0], ref.fps,
                                landmark_distance=setting == "self"))
    faces = None
    if ctx.landmarker is not None:
        faces = track_faces(np.round(rendered.rgb * 255).astype(np.uint8), ctx.landmarker,
                            total=len(rendered.rgb), desc=f"{driving.name} landmarks")
        if ctx.ref_faces is not None:
            add(scores.mediapipe_scores(faces, ctx.ref_faces, ref.fps, compare_faces=setting == "self"))
    if driving.waveform is not None:
        add(scores.speech_scores(driving.waveform, rendered.mouth_mm, ref.fps, faces))
    else:
        reasons.update({k: "unavailable: no driving audio" for k in SPEECH_METRICS})
    truth = ref.track if setting == "self" else driving.source_track
    if truth is None:
        reasons.update({k: "unavailable: the driving clip has no tracked motion (a speech file)"
                        for k in MESH_METRICS})
    elif not is_reference:
        gt_vertices, gt_opening = renderer.expression_mesh(truth)
        vertices, opening = renderer.expression_mesh(driving.track)
        add(scores.mesh_scores(vertices, gt_vertices, opening, gt_opening, *ctx.mesh_ids))
        curves["ground_truth_mouth_mm"] = gt_opening
    return {"values": values, "reasons": reasons, "rgb": rendered.rgb, "curves": curves, "regions": regions}


# Region sizes at the crop size S (512 for `flashtalker track`), scaled for other sizes.
HEAD_BOX_MARGIN_AT_512 = 8
NECK_RING_RADIUS_AT_512 = 16


def region_table(rgb: np.ndarray, ref: drive.Reference, lpips_models: dict) -> dict:
    """PSNR/SSIM(/LPIPS) over the whole frame, the head box and the neck ring (metrics/
    regions.py): the whole-frame score of a composite contains ground-truth pixels, the
    head box and the neck ring are where the avatar and the inpainter drew."""
    import functools

    from flashtalker_jax.metrics.regions import evaluation_regions, region_scores

    scale = rgb.shape[1] / 512
    masks = evaluation_regions(ref.head_masks, ref.person_masks, max(1, round(HEAD_BOX_MARGIN_AT_512 * scale)),
                               max(1, round(NECK_RING_RADIUS_AT_512 * scale)))
    masks = {"whole_frame": np.ones(rgb.shape[:3], bool), **masks}
    lpips_fn = None
    if lpips_models:
        from flashtalker_jax.metrics.lpips import lpips_distance

        lpips_fn = functools.partial(lpips_distance, next(iter(lpips_models.values())), normalize=True)
    return region_scores(rgb, ref.gt, masks, lpips_fn)


def make_context(renderer: EvalRenderer, ref: drive.Reference, setting: str, landmarker, lpips_models,
                 lpips_reasons: dict) -> Context:
    from flashtalker_jax.avatar.evaluate import mouth_box
    from flashtalker_jax.flame.loader import load_region_masks
    from flashtalker_jax.metrics.landmarks import track_faces

    points = renderer.flame_points(ref.track, ref.viewmat, ref.K)
    boxes = [mouth_box(points[1][i:i + 1], ref.viewmat[i:i + 1], ref.K[i:i + 1], renderer.size, 0.25)
             for i in range(len(ref.gt))] if setting == "self" else []
    faces = None
    reasons = base_reasons(setting, landmarker, lpips_reasons)
    if landmarker is not None and ref.gt is not None:
        faces = track_faces(np.round(ref.gt * 255).astype(np.uint8), landmarker, total=len(ref.gt),
                            desc="reference landmarks")
    elif landmarker is not None:
        reasons["stability"] = NO_POSE_VIDEO
    masks = load_region_masks(renderer.avatar_dir / "flame")
    zero = {"expr": np.zeros((1, renderer.n_expr), np.float32), "jaw_pose": np.zeros((1, 3), np.float32)}
    neutral = renderer.expression_mesh(zero)[0][0]
    mesh_ids = (neutral, masks["lips"].astype(np.int32), masks["upper_face"].astype(np.int32))
    return Context(setting, ref, points, faces, boxes, lpips_models, landmarker, mesh_ids, reasons)


def load_lpips_models(weights, net: str) -> tuple[dict, dict]:
    """({metric name: model}, {metric name: reason}) for LPIPS with user weights or none."""
    from flashtalker_jax.metrics.lpips import try_load_lpips

    backbone, lin = weights if weights else (None, None)
    model, why = try_load_lpips(net, backbone, lin)
    other = "vgg" if net == "alex" else "alex"
    reasons = {f"lpips_{other}": f"unavailable: weights were given for lpips_{net} only"
               if model is not None else try_load_lpips(other, None, None)[1]}
    if model is None:
        reasons[f"lpips_{net}"] = why
        return {}, reasons
    return {f"lpips_{net}": model}, reasons


def evaluate(avatar, data, setting: str, *, a2e=None, sources=(), lpips_weights=None,
             lpips_net: str = "alex", landmarker=None, max_frames: int = 0, seed: int = 0,
             sample_steps: int | None = None, batch_size: int = 4, out_dir=None,
             grid_frames: int = 6, show_progress: bool = True, renderer: EvalRenderer | None = None,
             overrides: tuple[str, ...] = ()) -> dict:
    """The whole evaluation (module docstring); writes the PNGs into out_dir and returns
    the report: per-row registry entries, table text, per-frame curves, PNG paths.
    `data`: the identity's VHAP folder; None (cross only) replays the avatar folder's track.
    `renderer`: an already loaded `avatar` (its compiled functions are reused);
    `overrides`: `--config.task.*` items for the avatar's saved config (load_eval_renderer)."""
    from flashtalker_jax.data.vhap import read_vhap

    if setting not in SETTINGS:
        raise ConfigError(f"--setting must be one of {SETTINGS}, got {setting!r}")
    if setting == "cross" and (a2e is None or not sources):
        raise ConfigError("cross-reenactment needs --a2e RUN and at least one --audio (a speech "
                          "file or another identity's VHAP folder)")
    for source in sources:
        if not Path(source).exists():
            raise InputFileError(source, "driving audio/folder not found")
    if setting == "self" and data is None:
        raise ConfigError("self-reenactment compares with the identity's held-out frames: pass "
                          "--data, its VHAP folder")
    # Wrong folders and weight files fail here, before the (slow) avatar load.
    seq = read_vhap(data) if data is not None else None
    lpips_models, lpips_reasons = load_lpips_models(lpips_weights, lpips_net)
    renderer = renderer or load_eval_renderer(avatar, batch_size, tuple(overrides))
    if seq is not None:
        fps = seq.fps
    else:
        from flashtalker_jax.avatar.export import read_meta

        fps = float(read_meta(renderer.avatar_dir)["fps"])
    motion_fn_for = None
    if a2e is not None:
        from flashtalker_jax.pipeline.motion import motion_from_run

        motion_fn_for = lambda poses: motion_from_run(a2e, poses, fps, renderer.n_expr,  # noqa: E731
                                                      seed=seed, sample_steps=sample_steps)
    ref, drivings = _drivings(renderer, seq, fps, setting, motion_fn_for, sources, max_frames)
    ctx = make_context(renderer, ref, setting, landmarker, lpips_models, lpips_reasons)
    compositing = None
    if is_real_avatar(renderer.task_cfg) and ref.gt is not None:
        from flashtalker_jax.composite.real import load_compositor

        reference = renderer.render(ref.track, ref.viewmat, ref.K, desc="reference", show_progress=show_progress)
        ctx = dataclasses.replace(ctx, compositor=load_compositor(renderer.avatar_dir), reference_render=reference)
        compositing = {"method": ctx.compositor.method, "removed_region_dilation_px": ctx.compositor.radius,
                       "pixels": PIXELS_FROM[setting]}
    results = {d.name: score_driving(renderer, ctx, d, show_progress) for d in drivings}
    rows = {name: row_entries(r["values"], r["reasons"]) for name, r in results.items()}
    report = {"setting": setting, "avatar": str(renderer.avatar_dir),
              "data": str(data) if data is not None else None,
              "a2e": str(a2e) if a2e else None, "sources": [str(s) for s in sources],
              "frames": len(ref.timesteps), "timesteps": ref.timesteps, "fps": ref.fps,
              "landmarker": str(landmarker) if landmarker else None,
              "table": metric_table(rows, TABLE_COLUMNS[setting]), "rows": rows,
              "per_frame": {name: r["curves"] for name, r in results.items()}}
    if compositing is not None:
        report["compositing"] = compositing
        if setting == "self":
            report["regions"] = {name: r["regions"] for name, r in results.items()}
    if out_dir is not None:
        report["pngs"] = save_pngs(Path(out_dir), ref, ctx.ref_points[0], results, setting, grid_frames)
    return report


def _drivings(renderer, seq, fps, setting, motion_fn_for, sources, max_frames):
    tcfg = renderer.task_cfg
    if setting == "self":
        indices = drive.heldout_indices(seq, tuple(tcfg.eval_splits), max_frames)
        ref = drive.load_reference(seq, indices, renderer.size, tcfg, renderer.audio_dim)
        waveform = None
        if seq.audio is not None and len(drive.segments(ref.timesteps)) == 1:
            waveform = drive.frames_audio(seq, ref.timesteps)
        drivings = [drive.Driving("tracked", ref.track, waveform)]
        if motion_fn_for is not None:
            drivings.append(drive.self_a2e_driving(ref, seq, motion_fn_for, renderer.n_expr))
        return ref, drivings
    clips = [drive.cross_source(s, fps, renderer.n_expr, renderer.audio_dim, max_frames)
             for s in sources]
    # One reference for every row: the identity's video replayed (as `speak` replays it)
    # for the shortest clip; longer clips are cut to it, so rows share frames and poses.
    n = min(c["n_frames"] for c in clips)
    if seq is None:   # no identity folder: the avatar folder's own track and camera
        ref = drive.stored_reference(renderer.avatar_dir, n, renderer.size, fps)
    else:
        rows = seq.camera_rows()
        ref = drive.load_reference(seq, rows[drive.pingpong(n, len(rows))], renderer.size, tcfg,
                                   renderer.audio_dim)
    return ref, [drive.cross_driving(drive.cut_clip(c, n, fps), ref, motion_fn_for, renderer.n_expr)
                 for c in clips]


def save_pngs(out_dir: Path, ref: drive.Reference, ref_points: np.ndarray, results: dict, setting: str,
              grid_frames: int) -> dict:
    """grid.png (reference | render [| |error|] per driving) and curves.png; ref_points:
    the reference's projected FLAME landmarks (T, L, 2), for its nose motion."""
    columns = plots.pick_frames(len(ref.timesteps), grid_frames)
    label = "ground truth" if setting == "self" else "pose source (identity video)"
    grid_rows = [(label, ref.gt)] if ref.gt is not None else []
    for name, result in results.items():
        grid_rows.append((f"{name} render", result["rgb"]))
        if setting == "self":
            grid_rows.append((f"|error| {name} x4", np.abs(result["rgb"] - ref.gt)))
    grid = plots.save_frame_grid(out_dir / "grid.png", grid_rows, columns)
    panels = []
    if setting == "self":
        panels.append(("PSNR (dB)", {n: r["curves"]["psnr"] for n, r in results.items()}))
    mouth = {n: r["curves"]["mouth_mm"] for n, r in results.items()}
    for name, result in results.items():
        if "ground_truth_mouth_mm" in result["curves"]:
            mouth[f"ground truth ({name})"] = result["curves"]["ground_truth_mouth_mm"]
    panels.append(("mouth opening (mm)", mouth))
    nose = {f"ground truth ({label})": scores.nose_motion_px(ref_points)}
    nose.update({n: r["curves"]["nose_motion_px"] for n, r in results.items()})
    panels.append(("nose motion (px/frame)", nose))
    curves = plots.save_curves(out_dir / "curves.png", panels, ref.fps,
                               f"{setting}-reenactment, {len(ref.timesteps)} frames")
    return {"grid": str(grid), "curves": str(curves)}
