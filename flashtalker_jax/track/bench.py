"""Tracking accuracy against ground truth we own: a `data synth` identity, tracked from its
pixels only, compared with the exact FLAME parameters it was rendered from.

    python -m flashtalker_jax.track.bench IDENTITY_DIR --out WORK [--report r.json]
        [--landmarker TASK] [--segmenter TFLITE] [--config.fit.face_steps=...]

IDENTITY_DIR is an identity folder of `flashtalker data synth` (its head in ../flame). The
frames and audio become an mp4, `track` runs on it with the same head (--flame), and the
tracked meshes are compared with the true ones over the head's 'face' region:
  face_vertex_error_mm   per frame, after a similarity alignment (scale, rotation,
                         translation: the monocular depth/focal ambiguity removed), averaged
  mouth_open_corr        Pearson r of the inner-lip gap (FLAME landmarks 62/66) over time
  expression_rmse        RMS difference of the expression coefficients both sides fit
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np


def frames_to_video(identity: Path, video: Path, fps: float) -> None:
    """The identity's images/ (timestep order) with its audio.wav as an mp4."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-framerate", str(fps),
           "-i", str(identity / "images" / "%05d_00.png"), "-i", str(identity / "audio.wav"),
           "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video)]
    subprocess.run(cmd, check=True, capture_output=True)


def _meshes(model, flame: dict, shape: np.ndarray, offset) -> np.ndarray:
    from flashtalker_jax.flame import FlameParams, flame_forward

    T = flame["expr"].shape[0]
    n = min(flame["expr"].shape[1], model.n_expr)
    params = FlameParams(shape=jnp.tile(jnp.asarray(shape)[None], (T, 1)), expr=jnp.asarray(flame["expr"][:, :n]),
                         rotation=jnp.asarray(flame["rotation"]), neck_pose=jnp.asarray(flame["neck_pose"]),
                         jaw_pose=jnp.asarray(flame["jaw_pose"]), eyes_pose=jnp.asarray(flame["eyes_pose"]),
                         translation=jnp.asarray(flame["translation"]),
                         static_offset=None if offset is None else jnp.asarray(offset))
    out = flame_forward(model, params)
    return np.asarray(out.vertices, np.float64), np.asarray(out.landmarks, np.float64)


def compare(identity: Path, tracked: Path) -> dict:
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.flame import load_flame_model, load_region_masks, mouth_opening
    from flashtalker_jax.track.embedding import umeyama

    truth, ours = read_vhap(identity), read_vhap(tracked)
    model = load_flame_model(tracked / "flame")
    face = load_region_masks(tracked / "flame", np.asarray(model.v_template))["face"]
    true_v, true_l = _meshes(model, truth.flame, truth.shape, truth.static_offset)
    our_v, our_l = _meshes(model, ours.flame, ours.shape, ours.static_offset)
    errors = []
    for t in range(len(true_v)):
        s, r, shift = umeyama(our_v[t, face], true_v[t, face])
        errors.append(np.linalg.norm(our_v[t, face] @ (s * r).T + shift - true_v[t, face], axis=1).mean())
    true_gap, our_gap = np.asarray(mouth_opening(true_l)), np.asarray(mouth_opening(our_l))
    n = min(truth.flame["expr"].shape[1], ours.flame["expr"].shape[1])
    return {"frames": len(true_v), "face_vertex_error_mm": 1e3 * float(np.mean(errors)),
            "face_vertex_error_mm_p95": 1e3 * float(np.percentile(errors, 95)),
            "mouth_open_corr": float(np.corrcoef(true_gap, our_gap)[0, 1]),
            "expression_rmse": float(np.sqrt(np.mean((truth.flame["expr"][:, :n] - ours.flame["expr"][:, :n]) ** 2)))}


def built_embedding(flame_dir: Path, landmarker):
    """The registration-built embedding of a head (embedding.build_embedding), never the bundled one."""
    from flashtalker_jax.flame import load_flame_model, load_region_masks
    from flashtalker_jax.track.canonical import load_canonical_mesh
    from flashtalker_jax.track.embedding import build_for_model

    model = load_flame_model(flame_dir)
    masks = load_region_masks(flame_dir, np.asarray(model.v_template))
    return build_for_model(load_canonical_mesh(landmarker), model, masks)


def main(argv: list[str] | None = None) -> int:
    from flashtalker_jax.config import load_config, split_overrides
    from flashtalker_jax.track.job import track_clip
    from flashtalker_jax.utils.report import print_table, write_report

    rest, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog="python -m flashtalker_jax.track.bench", description=__doc__.split("\n")[0])
    parser.add_argument("identity")
    parser.add_argument("--out", required=True)
    parser.add_argument("--embedding", help="mediapipe_landmark_embedding.npz, or 'built' for one built from "
                                            "MediaPipe's canonical mesh (default: track's choice)")
    parser.add_argument("--landmarker")
    parser.add_argument("--segmenter")
    parser.add_argument("--config", default="track")
    parser.add_argument("--report")
    args = parser.parse_args(rest)
    cfg = load_config(args.config, overrides)
    cfg.video.landmarker = args.landmarker or cfg.video.landmarker
    cfg.video.segmenter = args.segmenter or cfg.video.segmenter
    identity, out = Path(args.identity), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((identity / "transforms.json").read_text())
    video = out / "identity.mp4"
    if not video.is_file():
        frames_to_video(identity, video, meta.get("fps", 25.0))
    embedding = args.embedding
    if embedding == "built":
        embedding = out / "built_embedding.npz"
        built_embedding(identity.parent / "flame", cfg.video.landmarker).save(embedding)
    report = track_clip(video, out / "tracked", cfg, flame=identity.parent / "flame", embedding=embedding)
    scores = compare(identity, out / "tracked")
    row = {**scores, "heldout_%eye": report["heldout_reprojection_pct_eye"], "fit_s": report["seconds"]["fit"]}
    print_table([row])
    write_report(args.report, {"command": "track bench", "identity": str(identity), **scores, "track": report})
    return 0


if __name__ == "__main__":
    sys.exit(main())
