"""Rest geometry of the procedural head: an implicit head surface sampled on a polar grid.

The head is a smooth union of ellipsoids (cranium, face, jaw, chin, cheekbones, brow ridge,
nose, lips, ears) and a neck cylinder, with eye sockets carved around two eyeballs. Vertices
sit on a grid of rings of constant polar angle around the crown (the +y axis) and columns of
constant azimuth (theta = 0 faces +z, theta > 0 towards +x, the subject's left); each vertex
is where its direction's ray from RAY_ORIGIN leaves the surface. The mouth and the eyes are
cuts along one ring: the cut's interior vertices are duplicated, the copy above the ring
used by the faces above it and the copy below by the faces below, so lips and lids separate.
"""
from __future__ import annotations

import dataclasses

import numpy as np

RAY_ORIGIN = np.array([0.0, -0.01, -0.012])  # on the neck axis: level neck boundary
EYE_CENTER = np.array([0.031, 0.024, 0.064])  # left eye (+x); the right eye mirrors x
EYE_RADIUS = 0.0122
LID_GAP = 0.0016  # eyelid skin keeps this far from the eyeball
N_COLUMNS = 96
N_RINGS = 54
MAX_POLAR = 2.85  # polar angle of the neck's bottom boundary ring
EYE_HALF_WIDTH = 0.115  # azimuth half-width of each eye opening (rad)
MOUTH_HALF_WIDTH = 0.28
EYEBALL_RINGS, EYEBALL_COLUMNS = 12, 20


def _ellipsoid(p, center, radii):
    q = (p - np.asarray(center)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _smin(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _smax(a, b, k):
    return -_smin(-a, -b, k)


def eye_centers() -> np.ndarray:
    """(2, 3): left eye (+x) then right eye."""
    return np.stack([EYE_CENTER, EYE_CENTER * np.array([-1.0, 1.0, 1.0])])


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Approximate signed distance (m) of points (..., 3) to the head surface (< 0 inside)."""
    d = _ellipsoid(p, (0, 0.025, -0.012), (0.074, 0.088, 0.097))  # cranium
    d = _smin(d, _ellipsoid(p, (0, -0.022, 0.028), (0.060, 0.074, 0.068)), 0.02)  # face
    d = _smin(d, _ellipsoid(p, (0, -0.062, 0.036), (0.050, 0.034, 0.056)), 0.02)  # jaw
    d = _smin(d, _ellipsoid(p, (0, -0.084, 0.072), (0.018, 0.014, 0.014)), 0.012)  # chin
    d = _smin(d, _ellipsoid(p, (0, 0.041, 0.074), (0.054, 0.012, 0.015)), 0.02)  # brow ridge
    for sx in (-1.0, 1.0):
        d = _smin(d, _ellipsoid(p, (sx * 0.044, 0.004, 0.056), (0.022, 0.015, 0.020)), 0.015)
        d = _smin(d, _ellipsoid(p, (sx * 0.077, 0.002, -0.010), (0.010, 0.028, 0.017)), 0.008)
        d = _smin(d, _ellipsoid(p, (sx * 0.013, -0.016, 0.097), (0.009, 0.008, 0.009)), 0.005)
    d = _smin(d, _ellipsoid(p, (0, 0.012, 0.093), (0.0085, 0.026, 0.012)), 0.008)  # bridge
    d = _smin(d, _ellipsoid(p, (0, -0.012, 0.106), (0.014, 0.011, 0.012)), 0.008)  # tip
    d = _smin(d, _ellipsoid(p, (0, -0.036, 0.09), (0.021, 0.0065, 0.009)), 0.008)  # upper lip
    d = _smin(d, _ellipsoid(p, (0, -0.049, 0.088), (0.019, 0.0075, 0.009)), 0.008)  # lower lip
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    neck = np.maximum(np.hypot(x, (z + 0.012) * 1.1) - 0.05, y + 0.03)
    d = _smin(d, neck, 0.03)
    for center in eye_centers():
        socket = np.linalg.norm(p - (center + [0.0, -0.001, 0.017]), axis=-1) - 0.013
        d = _smax(d, -socket, 0.01)
        d = _smin(d, np.linalg.norm(p - center, axis=-1) - (EYE_RADIUS + LID_GAP), 0.006)
    return d


def directions(theta: np.ndarray, polar: np.ndarray) -> np.ndarray:
    """Unit directions (..., 3) for azimuth theta and polar angle from +y."""
    return np.stack([np.sin(polar) * np.sin(theta), np.cos(polar),
                     np.sin(polar) * np.cos(theta)], axis=-1)


def ray_cast(dirs: np.ndarray, t_max: float = 0.3, steps: int = 120, iters: int = 32) -> np.ndarray:
    """Points (N, 3) where rays from RAY_ORIGIN last leave the surface (outermost crossing)."""
    t = np.linspace(0.0, t_max, steps)
    inside = head_sdf(RAY_ORIGIN + dirs[:, None, :] * t[None, :, None]) < 0
    last = steps - 1 - np.argmax(inside[:, ::-1], axis=1)
    lo, hi = t[last], t[np.minimum(last + 1, steps - 1)]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        is_in = head_sdf(RAY_ORIGIN + dirs * mid[:, None]) < 0
        lo, hi = np.where(is_in, mid, lo), np.where(is_in, hi, mid)
    return RAY_ORIGIN + dirs * (0.5 * (lo + hi))[:, None]


def polar_of(point: np.ndarray) -> tuple[float, float]:
    """(theta, polar) of a point seen from RAY_ORIGIN."""
    d = point - RAY_ORIGIN
    return float(np.arctan2(d[0], d[2])), float(np.arccos(d[1] / np.linalg.norm(d)))


def eye_slit_ring() -> tuple[float, float]:
    """(theta, polar) of the left eye's front point; the eye cut lies on that ring."""
    return polar_of(EYE_CENTER + [0, 0, EYE_RADIUS + LID_GAP])


def mouth_slit_ring() -> float:
    """Polar angle of the mouth line (between the lips, front)."""
    return polar_of(np.array([0.0, -0.0425, 0.1]))[1]


def column_angles(n: int = N_COLUMNS, squeeze: float = 0.55) -> np.ndarray:
    """Azimuths, denser at the front (theta = 0), symmetric: column j mirrors column n - j."""
    u = -np.pi + 2 * np.pi * np.arange(n) / n
    return u - squeeze * np.sin(u)


def ring_angles(n: int = N_RINGS) -> np.ndarray:
    """Polar angles of rings 0 (the crown point) .. n, denser over the face, with the eye and
    mouth rings placed exactly on the cuts."""
    fine = np.linspace(0.0, MAX_POLAR, 4001)
    density = 1.0 + 1.5 * np.exp(-(((fine - 1.6) / 0.55) ** 2))
    cum = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(fine))])
    rings = np.interp(np.linspace(0, cum[-1], n + 1), cum, fine)
    for target in (eye_slit_ring()[1], mouth_slit_ring()):
        rings[np.argmin(np.abs(rings - target))] = target
    return rings


@dataclasses.dataclass
class HeadGrid:
    """Topology of the head surface and the parameters of each vertex.

    base (R + 1, C): vertex id at ring i, column j (ring 0 is the single crown vertex);
    below (R + 1, C): the id the faces *below* ring i use (differs only on cuts);
    theta / polar (Vh,): grid angles per vertex; side (Vh,): +1 copy above a cut, -1 copy
    below a cut, 0 elsewhere; cell_faces (R, C, 2): the face ids of each grid cell.
    """

    theta_cols: np.ndarray
    rings: np.ndarray
    eye_ring: int
    mouth_ring: int
    base: np.ndarray
    below: np.ndarray
    theta: np.ndarray
    polar: np.ndarray
    side: np.ndarray
    faces: np.ndarray
    cell_faces: np.ndarray

    @property
    def n_vertices(self) -> int:
        return self.theta.shape[0]

    def mirror_column(self, j):
        return (-np.asarray(j)) % self.theta_cols.shape[0]


def _cut_columns(theta_cols, center, half_width):
    return np.nonzero(np.abs(theta_cols - center) < half_width - 1e-9)[0]


def build_grid() -> HeadGrid:
    theta_cols, rings = column_angles(), ring_angles()
    R, C = rings.shape[0] - 1, theta_cols.shape[0]
    eye_theta, eye_polar = eye_slit_ring()
    eye_ring = int(np.argmin(np.abs(rings - eye_polar)))
    mouth_ring = int(np.argmin(np.abs(rings - mouth_slit_ring())))
    base = np.zeros((R + 1, C), np.int64)
    base[1:] = 1 + np.arange(R * C).reshape(R, C)
    below = base.copy()
    theta = [0.0] + list(np.tile(theta_cols, R))
    polar = [0.0] + list(np.repeat(rings[1:], C))
    side = np.zeros(1 + R * C, np.int64)
    cuts = [(eye_ring, _cut_columns(theta_cols, eye_theta, EYE_HALF_WIDTH)),
            (eye_ring, _cut_columns(theta_cols, -eye_theta, EYE_HALF_WIDTH)),
            (mouth_ring, _cut_columns(theta_cols, 0.0, MOUTH_HALF_WIDTH))]
    next_id = 1 + R * C
    extra_side = []
    for ring, cols in cuts:
        side[base[ring, cols]] = 1
        below[ring, cols] = next_id + np.arange(cols.size)
        next_id += cols.size
        theta += list(theta_cols[cols])
        polar += [rings[ring]] * cols.size
        extra_side += [-1] * cols.size
    side = np.concatenate([side, extra_side])

    faces, cell_faces = [], np.zeros((R, C, 2), np.int64)
    for j in range(C):
        faces.append([0, base[1, j], base[1, (j + 1) % C]])
        cell_faces[0, j] = len(faces) - 1
    for i in range(1, R):
        for j in range(C):
            jn = (j + 1) % C
            a, d = below[i, j], below[i, jn]
            b, c = base[i + 1, j], base[i + 1, jn]
            faces += [[a, b, c], [a, c, d]]
            cell_faces[i, j] = [len(faces) - 2, len(faces) - 1]
    return HeadGrid(theta_cols=theta_cols, rings=rings, eye_ring=eye_ring, mouth_ring=mouth_ring,
                    base=base, below=below, theta=np.asarray(theta), polar=np.asarray(polar),
                    side=side, faces=np.asarray(faces, np.int64), cell_faces=cell_faces)


def eyeball_mesh(center: np.ndarray, first_id: int):
    """Sphere of EYE_RADIUS around `center`, pole facing +z, open at the back.

    Returns vertices (N, 3), faces (M, 3) (ids offset by first_id), the (N, 2) polar
    coordinates (angle from the front pole, azimuth) and the ids whose centroid is the centre.
    """
    phi = np.pi * np.arange(1, EYEBALL_RINGS) / EYEBALL_RINGS
    psi = 2 * np.pi * np.arange(EYEBALL_COLUMNS) / EYEBALL_COLUMNS
    P, S = np.meshgrid(phi, psi, indexing="ij")
    ring_pts = np.stack([np.sin(P) * np.cos(S), np.sin(P) * np.sin(S), np.cos(P)], -1).reshape(-1, 3)
    verts = center + EYE_RADIUS * np.concatenate([[[0.0, 0.0, 1.0]], ring_pts])
    coords = np.concatenate([[[0.0, 0.0]], np.stack([P, S], -1).reshape(-1, 2)])
    ids = 1 + np.arange(P.size).reshape(P.shape)
    faces = [[0, ids[0, k], ids[0, (k + 1) % EYEBALL_COLUMNS]] for k in range(EYEBALL_COLUMNS)]
    for r in range(EYEBALL_RINGS - 2):
        for k in range(EYEBALL_COLUMNS):
            kn = (k + 1) % EYEBALL_COLUMNS
            faces += [[ids[r, k], ids[r + 1, k], ids[r + 1, kn]], [ids[r, k], ids[r + 1, kn], ids[r, kn]]]
    return verts, np.asarray(faces) + first_id, coords, first_id + ids.reshape(-1)
