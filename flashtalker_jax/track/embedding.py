"""Where MediaPipe's 478 landmarks sit on a FLAME-format head: the landmark embedding.

Format (the public `mediapipe_landmark_embedding.npz` layout): lmk_face_idx (L,) triangle
ids of the head, lmk_b_coords (L, 3) barycentric weights, landmark_indices (L,) the
MediaPipe point (0..477) each row embeds. Users of real FLAME may pass the published file;
`build_embedding` makes one for any head, with no licensed file:

1. Register MediaPipe's canonical face mesh (canonical.py) to the head's neutral template
   through 51 semantic correspondences: the head's own static landmarks (iBUG-68 points
   17..67, which every FLAME-format head carries) and the MediaPipe points at the same
   anatomical places (IBUG51_MEDIAPIPE). A similarity (Umeyama) takes the canonical mesh
   to the template; a 3-D thin-plate spline through the 51 residuals then bends it onto
   the head's proportions.
2. The 51 correspondence points take the head's own embedding exactly; every other
   canonical vertex goes to its closest point on the head's face surface (triangles whose
   corners are all outside the eyeballs).
3. Iris (468-477): on the eyeballs. Each centre is where the eyeball's forward axis leaves
   the sphere; the four ring points are rotated from it by the iris radius, which is
   IRIS_RADIUS_OVER_EYE_WIDTH times the eye's corner-to-corner width (the ratio MediaPipe
   itself predicts on real faces: ~10.5 px radius for a 45 px eye on may_5s, frame 0).
   Ring order: +x (subject's left), +y (up), -x, -y, as MediaPipe orders 469-472/474-477.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.track.canonical import N_CANONICAL, CanonicalMesh

N_MEDIAPIPE = 478
# MediaPipe point at each iBUG-68 point 17..67 (brows, nose, eyes, lips: no jaw contour).
IBUG51_MEDIAPIPE = (
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,          # 17-26 brows, subject's right first
    168, 197, 5, 4, 75, 97, 2, 326, 305,                    # 27-35 nose bridge, base
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # 36-47 eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,    # 48-59 outer lips
    78, 82, 13, 312, 308, 317, 14, 87)                      # 60-67 inner lips
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre, then +x, +y, -x, -y (subject's right eye)
LEFT_IRIS = (473, 474, 475, 476, 477)
RIGHT_EYE_CORNERS = (36 - 17, 39 - 17)  # static-landmark rows of iBUG 36 / 39
LEFT_EYE_CORNERS = (42 - 17, 45 - 17)
IRIS_RADIUS_OVER_EYE_WIDTH = 0.235
TPS_SMOOTHING = 1e-6
FIX = "pass the embedding that belongs to this head (--embedding), or rebuild it with `flashtalker track`"


@dataclasses.dataclass(frozen=True)
class LandmarkEmbedding:
    """lmk_face_idx (L,) int64, lmk_b_coords (L, 3), landmark_indices (L,) int64 (0..477)."""
    lmk_face_idx: np.ndarray
    lmk_b_coords: np.ndarray
    landmark_indices: np.ndarray

    def points(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Embedded points (..., L, 3) on vertices (..., V, 3)."""
        corners = vertices[..., faces[self.lmk_face_idx], :]  # (..., L, 3, 3)
        return np.einsum("...lki,lk->...li", corners, self.lmk_b_coords)

    def save(self, path: str | os.PathLike) -> None:
        from flashtalker_jax.utils.files import atomic_path

        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, lmk_face_idx=self.lmk_face_idx, lmk_b_coords=self.lmk_b_coords,
                         landmark_indices=self.landmark_indices)


def load_embedding(path: str | os.PathLike, n_faces: int) -> LandmarkEmbedding:
    """Read and check a mediapipe_landmark_embedding.npz against a head with n_faces triangles."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as raw:
            arrays = {k: np.asarray(raw[k]) for k in ("lmk_face_idx", "lmk_b_coords", "landmark_indices")}
    except FileNotFoundError as err:
        raise ModelFileError(path, "landmark embedding not found", FIX) from err
    except KeyError as err:
        raise ModelFileError(path, f"missing array {err}", FIX) from err
    except (OSError, ValueError) as err:
        raise ModelFileError(path, f"not a readable .npz ({err})", FIX) from err
    idx, bary, ids = arrays["lmk_face_idx"].reshape(-1), arrays["lmk_b_coords"], arrays["landmark_indices"].reshape(-1)
    if bary.shape != (idx.size, 3) or ids.size != idx.size:
        raise ModelFileError(path, f"rows disagree: {idx.size} faces, bary {bary.shape}, {ids.size} ids", FIX)
    if idx.size and (idx.min() < 0 or idx.max() >= n_faces):
        raise ModelFileError(path, f"triangle ids reach {idx.max()}, the head has {n_faces} triangles", FIX)
    if ids.size and (ids.min() < 0 or ids.max() >= N_MEDIAPIPE):
        raise ModelFileError(path, f"landmark ids reach {ids.max()}, MediaPipe has {N_MEDIAPIPE}", FIX)
    return LandmarkEmbedding(idx.astype(np.int64), bary.astype(np.float64), ids.astype(np.int64))


# ----------------------------------------------------------------------------- geometry

def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R source + t - target|^2; (N, 3) points."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, sig, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / a.var(0).sum())
    return scale, rot, mu_t - scale * rot @ mu_s


def thin_plate_warp(controls: np.ndarray, displacements: np.ndarray, points: np.ndarray,
                    smoothing: float = TPS_SMOOTHING) -> np.ndarray:
    """3-D thin-plate spline (kernel |r|, affine part) through controls (K, 3) with
    displacements (K, 3), evaluated at points (N, 3) -> displaced points (N, 3)."""
    k = len(controls)
    kernel = np.linalg.norm(controls[:, None] - controls[None], axis=-1) + smoothing * np.eye(k)
    affine = np.concatenate([np.ones((k, 1)), controls], axis=1)
    system = np.block([[kernel, affine], [affine.T, np.zeros((4, 4))]])
    rhs = np.concatenate([displacements, np.zeros((4, 3))])
    coef = np.linalg.solve(system, rhs)
    basis = np.linalg.norm(points[:, None] - controls[None], axis=-1)
    return points + basis @ coef[:k] + np.concatenate([np.ones((len(points), 1)), points], 1) @ coef[k:]


def closest_on_triangles(points: np.ndarray, tri: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For points (N, 3) and triangles (F, 3, 3): index (N,) of the closest triangle and the
    barycentric coordinates (N, 3) of the closest point on it (Ericson's region test)."""
    best_face, best_bary = [], []
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk, None, :]                     # (n, 1, 3)
        bary = _closest_bary(p, tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])  # (n, F, 3)
        closest = np.einsum("nfk,fki->nfi", bary, tri)
        face = np.argmin(((closest - p) ** 2).sum(-1), axis=1)
        best_face.append(face)
        best_bary.append(bary[np.arange(len(face)), face])
    return np.concatenate(best_face), np.concatenate(best_bary)


def _closest_bary(p, a, b, c):
    """Barycentrics of the closest point on triangles abc to p (broadcast arrays (..., 3))."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    shape = np.broadcast_shapes(d1.shape, va.shape)
    out = np.stack([1 - v_in - w_in, v_in, w_in], -1)
    edge_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    edge_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    edge_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    regions = [  # later entries win: vertices beat edges beat the interior
        (edge_bc, np.stack([np.zeros(shape), 1 - t_bc, t_bc], -1)),
        (edge_ac, np.stack([1 - t_ac, np.zeros(shape), t_ac], -1)),
        (edge_ab, np.stack([1 - t_ab, t_ab, np.zeros(shape)], -1)),
        ((d6 >= 0) & (d5 <= d6), np.broadcast_to([0.0, 0.0, 1.0], shape + (3,))),
        ((d3 >= 0) & (d4 <= d3), np.broadcast_to([0.0, 1.0, 0.0], shape + (3,))),
        ((d1 <= 0) & (d2 <= 0), np.broadcast_to([1.0, 0.0, 0.0], shape + (3,))),
    ]
    for mask, value in regions:
        out = np.where(mask[..., None], value, out)
    return np.nan_to_num(out)


# ----------------------------------------------------------------------------- builder

def register_canonical(canonical: CanonicalMesh, template_points: np.ndarray) -> np.ndarray:
    """Canonical vertices (468, 3) moved onto a head whose static landmarks (51, 3) are given."""
    source = canonical.vertices[list(IBUG51_MEDIAPIPE)]
    scale, rot, shift = umeyama(source, template_points)
    moved = canonical.vertices @ (scale * rot).T + shift
    controls = moved[list(IBUG51_MEDIAPIPE)]
    return thin_plate_warp(controls, template_points - controls, moved)


def _iris_rows(v_template, faces, eyeball_ids, corners, ids) -> tuple[list, list]:
    """Face ids and barycentrics of one eye's five iris points on its eyeball."""
    ball = np.isin(faces, eyeball_ids).all(axis=1)
    ball_faces = np.nonzero(ball)[0]
    centre = v_template[eyeball_ids].mean(0)
    radius = np.linalg.norm(v_template[eyeball_ids] - centre, axis=1).max()
    angle = np.arcsin(min(1.0, IRIS_RADIUS_OVER_EYE_WIDTH * np.linalg.norm(corners[1] - corners[0]) / radius))
    forward = np.array([0.0, 0.0, 1.0])
    dirs = [forward] + [np.cos(angle) * forward + np.sin(angle) * np.asarray(d, float)
                        for d in ((1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0))]
    targets = centre + radius * np.stack(dirs)
    face, bary = closest_on_triangles(targets, v_template[faces[ball_faces]])
    return list(ball_faces[face]), list(bary)


def build_embedding(canonical: CanonicalMesh, v_template: np.ndarray, faces: np.ndarray,
                    lmk_faces_idx: np.ndarray, lmk_bary_coords: np.ndarray,
                    masks: dict[str, np.ndarray]) -> LandmarkEmbedding:
    """The embedding of all 478 MediaPipe points on a head (module docstring, steps 1-3).

    v_template (V, 3) the neutral template, faces (F, 3), lmk_faces_idx (51,) and
    lmk_bary_coords (51, 3) the head's static landmarks (iBUG 17..67), masks: FLAME_masks
    regions (needs left_eyeball, right_eyeball)."""
    v_template, faces = np.asarray(v_template, np.float64), np.asarray(faces, np.int64)
    for key in ("left_eyeball", "right_eyeball"):
        if key not in masks:
            raise ModelFileError(None, f"the head's region masks have no '{key}' (needed for the iris)")
    static = np.einsum("lki,lk->li", v_template[faces[lmk_faces_idx]], lmk_bary_coords)
    warped = register_canonical(canonical, static)
    eyes = np.union1d(masks["left_eyeball"], masks["right_eyeball"])
    surface = np.nonzero(~np.isin(faces, eyes).any(axis=1))[0]
    face, bary = closest_on_triangles(warped, v_template[faces[surface]])
    face_idx, bary_rows = list(surface[face]), list(bary)
    for row, point in enumerate(IBUG51_MEDIAPIPE):
        face_idx[point], bary_rows[point] = int(lmk_faces_idx[row]), np.asarray(lmk_bary_coords[row], float)
    for ball, corner_rows, ids in ((masks["right_eyeball"], RIGHT_EYE_CORNERS, RIGHT_IRIS),
                                   (masks["left_eyeball"], LEFT_EYE_CORNERS, LEFT_IRIS)):
        f, b = _iris_rows(v_template, faces, ball, static[list(corner_rows)], ids)
        face_idx += f
        bary_rows += b
    return LandmarkEmbedding(np.asarray(face_idx, np.int64), np.stack(bary_rows),
                             np.arange(N_CANONICAL + 10, dtype=np.int64))


def build_for_model(canonical: CanonicalMesh, model, masks: dict[str, np.ndarray]) -> LandmarkEmbedding:
    """build_embedding for a loaded FlameModel (its neutral template, faces and static landmarks)."""
    return build_embedding(canonical, np.asarray(model.v_template), np.asarray(model.faces),
                           np.asarray(model.lmk_faces_idx), np.asarray(model.lmk_bary_coords), masks)
