"""Calibrate a landmark embedding against MediaPipe on renders whose meshes we know.

The registration-built embedding (embedding.py) puts each MediaPipe point where the
canonical face mesh lands on the head; MediaPipe itself may read the head's features a
little elsewhere (measured on a data-synth identity: 5.8 px RMS at a 512 crop between its
detections and the true mesh through the built embedding, with 4 % of the eye distance
of it systematic). A fit absorbs such a bias into shape and expression, which is what
made pixels-only tracking of our own head millimetres off.

Given frames with known posed meshes (data synth identities) and MediaPipe's detections
on them, every point moves to the surface location that best explains its detections
over all frames: among the `candidates` triangles nearest its current place (eyeball
triangles for the iris, the rest for the face), on a barycentric grid of `grid` steps per
edge, the one with the least mean squared reprojection error; it moves only if that beats
where it is. The result is an ordinary mediapipe_landmark_embedding.npz for the head's
topology.

    python -m flashtalker_jax.track.calibrate SYNTH_IDENTITY [...] --work DIR --out emb.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from flashtalker_jax.track.embedding import LandmarkEmbedding
from flashtalker_jax.utils.progress import progress

CANDIDATES = 40
GRID = 12


def barycentric_grid(steps: int) -> np.ndarray:
    """(G, 3) barycentric points with spacing 1/steps on a triangle."""
    g = np.arange(steps + 1) / steps
    u, v = np.meshgrid(g, g)
    keep = u + v <= 1 + 1e-9
    return np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)


def calibrate(embedding: LandmarkEmbedding, template: np.ndarray, faces: np.ndarray, eyeball_faces: np.ndarray,
              meshes: list[np.ndarray], detections: list[np.ndarray], projections: list,
              candidates: int = CANDIDATES, grid: int = GRID) -> tuple[LandmarkEmbedding, dict]:
    """meshes[i] (T_i, V, 3) posed, detections[i] (T_i, 478, 2) pixels (NaN: none),
    projections[i]: points (..., 3) -> pixels (..., 2) of sequence i. Returns the new
    embedding and {rms_px_before, rms_px_after, moved}."""
    bary = barycentric_grid(grid)
    centroids = template[faces].mean(1)
    face_idx, coords = embedding.lmk_face_idx.copy(), embedding.lmk_b_coords.copy()
    before, after = [], []
    for row, point in enumerate(progress(embedding.landmark_indices, desc="calibrate", unit="point")):
        here = (template[faces[face_idx[row]]] * coords[row][:, None]).sum(0)
        pool = eyeball_faces if point >= 468 else np.setdiff1d(np.arange(len(faces)), eyeball_faces)
        near = pool[np.argsort(((centroids[pool] - here) ** 2).sum(1))[:candidates]]
        error = np.zeros((len(near), len(bary)))
        current = 0.0
        for mesh, detected, project in zip(meshes, detections, projections):
            ok = ~np.isnan(detected[:, point, 0])
            target = detected[ok, point]
            spots = np.einsum("gj,tcjd->tcgd", bary, mesh[ok][:, faces[near]])
            error += ((project(spots) - target[:, None, None]) ** 2).sum(-1).sum(0)
            now = np.einsum("j,tjd->td", coords[row], mesh[ok][:, faces[face_idx[row]]])
            current += ((project(now) - target) ** 2).sum()
        count = sum(int((~np.isnan(d[:, point, 0])).sum()) for d in detections)
        best = np.unravel_index(np.argmin(error), error.shape)
        before.append(current / count)
        if error[best] < current:
            face_idx[row], coords[row] = near[best[0]], bary[best[1]]
        after.append(min(error[best], current) / count)
    moved = int((face_idx != embedding.lmk_face_idx).sum() + ((face_idx == embedding.lmk_face_idx)
                & np.any(coords != embedding.lmk_b_coords, axis=1)).sum())
    stats = {"rms_px_before": float(np.sqrt(np.mean(before))), "rms_px_after": float(np.sqrt(np.mean(after))),
             "moved": moved}
    return LandmarkEmbedding(face_idx, coords, embedding.landmark_indices.copy()), stats


def identity_sequence(identity: Path, work: Path, cfg):
    """(meshes (T, V, 3), detections (T, 478, 2) crop pixels, projection) of a synth identity:
    its frames become an mp4, import-video detects them like any real clip."""
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.track.bench import _meshes, frames_to_video
    from flashtalker_jax.track.job import IMPORT_REPORT, import_stage
    from flashtalker_jax.track.observations import read_landmarks

    work.mkdir(parents=True, exist_ok=True)
    video = work / "identity.mp4"
    meta = json.loads((identity / "transforms.json").read_text())
    if not video.is_file():
        frames_to_video(identity, video, meta.get("fps", 25.0))
    import_stage(video, work, cfg)
    truth = read_vhap(identity)
    model = load_flame_model(identity.parent / "flame")
    meshes, _ = _meshes(model, truth.flame, truth.shape, truth.static_offset)
    detected, found = read_landmarks(work)
    detected[~found] = np.nan
    frame = meta["frames"][0]
    K = np.array([[frame["fl_x"], 0, frame["cx"]], [0, frame["fl_y"], frame["cy"]], [0, 0, 1.0]])
    w2c = np.linalg.inv(np.asarray(frame["transform_matrix"]) @ np.diag([1.0, -1, -1, 1]))
    crop = json.loads((work / IMPORT_REPORT).read_text())
    x0, y0, side = crop["crop_box_xy_side"]
    scale = crop["crop_size"] / side

    def project(points):
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        uvw = cam @ K.T
        return (uvw[..., :2] / uvw[..., 2:] - [x0, y0]) * scale

    return meshes, detected, project


def main(argv: list[str] | None = None) -> int:
    from flashtalker_jax.config import load_config
    from flashtalker_jax.flame import load_flame_model, load_region_masks
    from flashtalker_jax.track.canonical import load_canonical_mesh
    from flashtalker_jax.track.embedding import build_for_model
    from flashtalker_jax.utils.report import print_table, write_report

    parser = argparse.ArgumentParser(prog="python -m flashtalker_jax.track.calibrate",
                                     description="calibrate the MediaPipe embedding of a head on data-synth identities")
    parser.add_argument("identities", nargs="+", help="data synth identity folders (their head in ../flame)")
    parser.add_argument("--work", required=True, help="folder for the videos and detections")
    parser.add_argument("--out", required=True, help="the calibrated mediapipe_landmark_embedding.npz")
    parser.add_argument("--landmarker", help="face_landmarker.task (default: configs/track.py video.landmarker)")
    parser.add_argument("--report")
    args = parser.parse_args(argv)
    cfg = load_config("track")
    cfg.video.landmarker = args.landmarker or cfg.video.landmarker
    identities = [Path(p) for p in args.identities]
    model = load_flame_model(identities[0].parent / "flame")
    masks = load_region_masks(identities[0].parent / "flame", np.asarray(model.v_template))
    template, faces = np.asarray(model.v_template, np.float64), np.asarray(model.faces, np.int64)
    start = build_for_model(load_canonical_mesh(cfg.video.landmarker), model, masks)
    sequences = [identity_sequence(p, Path(args.work) / f"{p.parent.name}_{p.name}", cfg) for p in identities]
    eyes = np.union1d(masks["left_eyeball"], masks["right_eyeball"])
    eyeball_faces = np.nonzero(np.isin(faces, eyes).all(1))[0]
    calibrated, stats = calibrate(start, template, faces, eyeball_faces, *map(list, zip(*sequences)))
    calibrated.save(args.out)
    record = {"command": "track calibrate", "identities": [str(p) for p in identities], **stats,
              "candidates": CANDIDATES, "grid": GRID}
    print_table([stats])
    write_report(args.report, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
