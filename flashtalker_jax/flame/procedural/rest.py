"""Rest-pose head: ray-cast grid, open eyelids, mouth crease, eyeballs."""
from __future__ import annotations

import dataclasses

import numpy as np

from flashtalker_jax.flame.procedural import geometry as geo

# Eye opening at rest, as polar-angle shifts of the cut's upper / lower edge (rad).
LID_OPEN_UP, LID_OPEN_DOWN = 0.055, 0.035
LID_FALLOFF_ROWS = 3.0
MOUTH_CREASE_DEPTH = 0.003


@dataclasses.dataclass
class RestHead:
    grid: geo.HeadGrid
    vertices: np.ndarray  # (V, 3): head then left eyeball then right eyeball
    faces: np.ndarray
    eyeballs: list  # per eye: dict(ids, centre_ids, coords)
    eye_thetas: tuple  # azimuth of the left and right eye cuts
    closed_lids: np.ndarray  # (Vh, 3) head vertices with the eye cuts closed

    @property
    def n_head(self) -> int:
        return self.grid.n_vertices


def _ring_spacing(grid: geo.HeadGrid, ring: int) -> float:
    return float((grid.rings[ring + 1] - grid.rings[ring - 1]) / 2)


def opened_polar(grid: geo.HeadGrid) -> np.ndarray:
    """Polar angles with each eye cut opened into an almond: the upper edge moves up by
    LID_OPEN_UP, the lower edge down by LID_OPEN_DOWN, fading over LID_FALLOFF_ROWS rings
    (slower than the ring spacing, so rings never cross) and to zero at the eye corners.
    Ray-casting the shifted directions keeps the lids on the head surface."""
    rows = (grid.polar - grid.rings[grid.eye_ring]) / _ring_spacing(grid, grid.eye_ring)
    is_upper = np.where(grid.side != 0, grid.side > 0, rows < 0)
    fall = np.clip(1 - np.abs(rows) / LID_FALLOFF_ROWS, 0, 1)
    eye_theta = geo.eye_slit_ring()[0]
    shift = np.zeros_like(grid.polar)
    for theta in (eye_theta, -eye_theta):
        s = (grid.theta - theta) / geo.EYE_HALF_WIDTH
        shift += np.clip(1 - s ** 2, 0, 1) * fall
    return grid.polar + shift * np.where(is_upper, -LID_OPEN_UP, LID_OPEN_DOWN)


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
    closed = mouth_crease(grid, geo.ray_cast(geo.directions(grid.theta, grid.polar)))
    head = mouth_crease(grid, geo.ray_cast(geo.directions(grid.theta, opened_polar(grid))))
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
                    eye_thetas=(eye_theta, -eye_theta), closed_lids=closed)


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
