"""`flashtalker eval-motion-encoder`: the encoder's FLAME against a reference, per clip.

The reference is the folder's own parameters: the tracker's fit for a tracked real clip,
the exact parameters for a procedural identity (the truth). The encoder sees only the
crops; its shape comes from its own shape extractor, its pose from the camera code turned
back through the clip's camera (encoder/camera_code.py). Per clip:
  lmk_px / lmk_pct_eye  mean distance of the 68 projected FLAME landmarks, in the folder's
                        pixels and in % of the reference's outer-eye-corner distance
  expr_rmse             over the expression components both have; jaw_deg: mean angle
                        between the jaw rotations
  jitter_px             mean |second difference| of the projected landmarks (px/frame^2):
                        encoder with its temporal head, raw per-frame encoder, reference
  stability             metrics/stability score of the nose landmarks vs the reference
  frames_per_s          encoder throughput on this machine (warm, crops already in memory)
  psnr_render           (with an e2v prior, `--render-prior`) the PSNR of the clip's one-shot
                        render posed by the encoder; psnr_render_reference: by the reference
                        (what the prior's Gaussians allow): image_loss.render_psnr
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.encoder.folder import read_encoder
from flashtalker_jax.encoder.predict import encode_clip, resize_crops, to_flame_params
from flashtalker_jax.encoder.task import dataset_folders, fit_width, frame_params, load_flame, resolve_flame_file
from flashtalker_jax.flame.landmarks import N_CONTOUR
from flashtalker_jax.track.metrics import acceleration

# Static-layout indices (iBUG-68 index - 17) of the outer eye corners and the nose.
OUTER_EYES = (36 - N_CONTOUR, 45 - N_CONTOUR)
NOSE = tuple(range(27 - N_CONTOUR, 36 - N_CONTOUR))


def project(landmarks: np.ndarray, viewmat: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(T, L, 3) world points -> (T, L, 2) pixels through per-frame cameras."""
    cam = np.einsum("tij,tlj->tli", viewmat[:, :3, :3], landmarks) + viewmat[:, None, :3, 3]
    pix = np.einsum("tij,tlj->tli", K, cam)
    return pix[..., :2] / pix[..., 2:]


def jitter(points: np.ndarray) -> float:
    """track/metrics.acceleration over every frame (an encoder sees a face in each crop)."""
    return acceleration(points, np.ones(len(points), bool))


def landmarks_2d(flame, params, viewmat, K) -> np.ndarray:
    from flashtalker_jax.flame.lbs import flame_forward

    out = jax.jit(flame_forward)(flame, params)
    return project(np.asarray(out.landmarks), viewmat, K)


def evaluate_clip(folder: Path, encoder, flame, splits) -> tuple[dict, dict]:
    """(metrics, per-frame curves) of one VHAP folder (module docstring)."""
    from flashtalker_jax.avatar.frames import split_indices
    from flashtalker_jax.data.vhap import read_vhap

    seq = read_vhap(folder)
    idx = np.arange(len(seq.image_paths)) if splits is None else np.sort(split_indices(seq, splits))
    images = resize_crops([seq.load_image(i) for i in idx], encoder.resolution)
    viewmat, K = seq.w2c[idx].astype(np.float32), seq.K[idx].astype(np.float32)
    motion, shape = encode_clip(encoder, images)
    start = time.perf_counter()
    raw, _ = encode_clip(encoder, images, temporal=False)
    seconds = time.perf_counter() - start
    track = {k: np.asarray(v[idx], np.float32) for k, v in seq.flame.items()}
    ref_shape = fit_width(np.asarray(seq.shape, np.float32)[None], flame.n_shape)[0]
    reference = frame_params(flame, ref_shape, track)

    def through_camera(m):
        params = to_flame_params(flame, m, shape, viewmat[0], K[0], seq.width)
        return landmarks_2d(flame, params, viewmat, K), params

    ref_lmk = landmarks_2d(flame, reference, viewmat, K)
    enc_lmk, enc_params = through_camera(motion)
    raw_lmk, _ = through_camera(raw)
    eyes = np.linalg.norm(ref_lmk[:, OUTER_EYES[0]] - ref_lmk[:, OUTER_EYES[1]], axis=-1)
    err = np.linalg.norm(enc_lmk - ref_lmk, axis=-1)
    n_expr = min(track["expr"].shape[1], motion["expr"].shape[1])
    jaw_diff = np.linalg.norm(np.asarray(enc_params.jaw_pose) - track["jaw_pose"], axis=-1)
    from flashtalker_jax.metrics.stability import stability_score

    metrics = {
        "clip": folder.name, "frames": int(len(idx)),
        "lmk_px": float(err.mean()), "lmk_pct_eye": float((100 * err / eyes[:, None]).mean()),
        "expr_rmse": float(np.sqrt(np.mean((motion["expr"][:, :n_expr] - track["expr"][:, :n_expr]) ** 2))),
        "jaw_deg": float(np.degrees(jaw_diff).mean()),
        "jitter_px": jitter(enc_lmk), "jitter_raw_px": jitter(raw_lmk), "jitter_reference_px": jitter(ref_lmk),
        "stability": float(stability_score(jnp.asarray(enc_lmk[:, list(NOSE)]), jnp.asarray(ref_lmk[:, list(NOSE)]),
                                           fps=seq.fps)),
        "frames_per_s": float(len(idx) / max(seconds, 1e-9)),
    }
    curves = {"jaw_encoder": np.linalg.norm(motion["jaw_pose"], axis=-1),
              "jaw_raw": np.linalg.norm(raw["jaw_pose"], axis=-1),
              "jaw_reference": np.linalg.norm(track["jaw_pose"], axis=-1)}
    return metrics, curves


def evaluate(encoder_dir, data: str, splits: tuple[str, ...] | None, *, plot=None, flame: str = "",
             render_prior=None, render_size: int = 64) -> dict:
    """Every clip of `data` (comma-separated VHAP folders); `splits` None = all frames."""
    folders = dataset_folders(data)
    flame_file = resolve_flame_file(flame, folders)
    folder = read_encoder(encoder_dir, flame_file)
    flame = load_flame(folder.task_cfg, flame_file)
    clips, curves = [], {}
    for path in folders:
        metrics, curves[path.name] = evaluate_clip(path, folder.encoder, flame, splits)
        clips.append(metrics)
    if render_prior:
        from flashtalker_jax.encoder.image_loss import render_psnr

        renders = render_psnr({"encoder": encoder_dir}, data, render_prior, splits, render_size)
        for clip, row in zip(clips, renders, strict=True):
            clip.update(psnr_render=row["psnr_encoder"], psnr_render_reference=row["psnr_reference"])
    if plot:
        plot_curves(Path(plot), curves)
    return {"encoder_meta": folder.meta, "splits": list(splits) if splits else "all", "clips": clips,
            "plot": str(plot) if plot else None}


def table_rows(report: dict) -> list[dict]:
    keys = ("clip", "frames", "lmk_px", "lmk_pct_eye", "expr_rmse", "jaw_deg", "jitter_px", "jitter_raw_px",
            "jitter_reference_px", "stability", "frames_per_s", "psnr_render", "psnr_render_reference")
    return [{k: (round(c[k], 3) if isinstance(c[k], float) else c[k]) for k in keys if k in c} for c in report["clips"]]


def plot_curves(path: Path, curves: dict[str, dict[str, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 1, figsize=(10, 2.4 * len(curves)), squeeze=False)
    for ax, (name, c) in zip(axes[:, 0], curves.items()):
        for key, style in (("jaw_reference", "k-"), ("jaw_raw", "r:"), ("jaw_encoder", "b-")):
            ax.plot(np.degrees(c[key]), style, lw=1, label=key.replace("jaw_", ""))
        ax.set_title(f"{name}: jaw angle (deg)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
