"""Rest-pose head: ray-cast grid, open eyelids, mouth crease, eyeballs."""
from __future__ import annotations

import dataclasses

import numpy as np

from flashtalker_jax.flame.procedural import geometry as geo

LID_OPEN_UP, LID_OPEN_DOWN = 0.40, -0.28  # lid rotation about the eye centre at rest (rad)
LID_CLOSED = -0.24  # both lids meet here when the eyes are closed
LID_FALLOFF_ROWS = 3.5
MOUTH_CREASE_DEPTH = 0.003


@dataclasses.dataclass
class RestHead:
    grid: geo.HeadGrid
    vertices: np.ndarray  # (V, 3): head then left eyeball then right eyeball
    faces: np.ndarray
    eyeballs: list  # per eye: dict(ids, centre_ids, coords)
    eye_thetas: tuple  # azimuth of the left and right eye cuts
    lids_unposed: np.ndarray  # (Vh, 3) head vertices before the lids were opened

    @property
    def n_head(self) -> int:
        return self.grid.n_vertices


def _ring_spacing(grid: geo.HeadGrid, ring: int) -> float:
    return float((grid.rings[ring + 1] - grid.rings[ring - 1]) / 2)


def eyelid_pose(grid: geo.HeadGrid, points: np.ndarray, upper: float, lower: float) -> np.ndarray:
    """Rotate the lid skin about each eye centre's x axis: `upper` (rad, + = up) at the upper
    edge of the cut, `lower` at the lower edge, fading over LID_FALLOFF_ROWS rings and to zero
    at the eye corners (an almond-shaped opening) and with the distance from the eyeball."""
    out = points.copy()
    eye_theta = geo.eye_slit_ring()[0]
    rows = (grid.polar - grid.rings[grid.eye_ring]) / _ring_spacing(grid, grid.eye_ring)
    is_upper = np.where(grid.side != 0, grid.side > 0, rows < 0)
    fall = np.clip(1 - np.abs(rows) / LID_FALLOFF_ROWS, 0, 1)
    for center, theta in zip(geo.eye_centers(), (eye_theta, -eye_theta)):
        s = (grid.theta - theta) / geo.EYE_HALF_WIDTH
        rel = out - center
        near = np.clip(1 - (np.linalg.norm(rel, axis=1) - geo.EYE_RADIUS - geo.LID_GAP) / 0.008, 0, 1)
        angle = np.where(is_upper, upper, lower) * np.clip(1 - s ** 2, 0, 1) ** 0.7 * fall * near
        c, sn = np.cos(angle), np.sin(angle)
        y = rel[:, 1] * c + rel[:, 2] * sn
        z = -rel[:, 1] * sn + rel[:, 2] * c
        out[:, 1], out[:, 2] = center[1] + y, center[2] + z
    return out


def mouth_profile(grid: geo.HeadGrid) -> np.ndarray:
    """(Vh,) 1 at the middle of the mouth cut, 0 at and beyond its corners."""
    return np.clip(1 - (grid.theta / geo.MOUTH_HALF_WIDTH) ** 2, 0, 1)


def mouth_rows(grid: geo.HeadGrid) -> np.ndarray:
    """(Vh,) signed ring distance from the mouth cut (< 0 above); cut copies get -0 / +0."""
    rows = (grid.polar - grid.rings[grid.mouth_ring]) / _ring_spacing(grid, grid.mouth_ring)
    return rows


def mouth_crease(grid: geo.HeadGrid, points: np.ndarray) -> np.ndarray:
    """Pull the lip line back so the closed lips meet in a crease."""
    rows = mouth_rows(grid)
    weight = np.sqrt(mouth_profile(grid)) * np.clip(1 - np.abs(rows) / 1.6, 0, 1)
    out = points.copy()
    out[:, 2] -= MOUTH_CREASE_DEPTH * weight
    return out


def build_rest_head() -> RestHead:
    grid = geo.build_grid()
    head = geo.ray_cast(geo.directions(grid.theta, grid.polar))
    unposed = mouth_crease(grid, head)
    head = eyelid_pose(grid, unposed, LID_OPEN_UP, LID_OPEN_DOWN)
    vertices, faces, eyeballs = [head], [grid.faces], []
    first = head.shape[0]
    for center in geo.eye_centers():
        v, f, coords, centre_ids = geo.eyeball_mesh(center, first)
        eyeballs.append({"ids": first + np.arange(v.shape[0]), "centre_ids": centre_ids,
                         "coords": coords, "center": center})
        vertices.append(v)
        faces.append(f)
        first += v.shape[0]
    vertices, faces = np.concatenate(vertices), np.concatenate(faces)
    faces = _orient_outward(vertices, faces, grid.n_vertices)
    eye_theta = geo.eye_slit_ring()[0]
    return RestHead(grid=grid, vertices=vertices, faces=faces, eyeballs=eyeballs,
                    eye_thetas=(eye_theta, -eye_theta), lids_unposed=unposed)


def _orient_outward(vertices, faces, n_head):
    """Flip the head's and each eyeball's winding so normals point outward."""
    def outward(f, center):
        a, b, c = vertices[f[:, 0]], vertices[f[:, 1]], vertices[f[:, 2]]
        n = np.cross(b - a, c - a)
        return np.sum(n * ((a + b + c) / 3 - center), axis=1).mean() > 0

    faces = faces.copy()
    head_faces = np.all(faces < n_head, axis=1)
    groups = [(head_faces, geo.RAY_ORIGIN)]
    groups += [(~head_faces & (faces[:, 0] >= n_head) & (vertices[faces[:, 0], 0] * s > 0), c)
               for s, c in zip((1, -1), geo.eye_centers())]
    for mask, center in groups:
        if not outward(faces[mask], center):
            faces[mask] = faces[mask][:, [0, 2, 1]]
    return faces


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    out = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
