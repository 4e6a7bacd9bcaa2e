"""A numpy triangle-mesh rasteriser (z-buffer + per-pixel fragments), shared by the
synthetic-data renderer (data/synth/mesh_render.py: textured, perspective ground truth) and
the FLAME preview (flame/preview.py: orthographic sheets). Deliberately unrelated to the
Gaussian rasterizer in this package, which the synthetic data is used to test.

Conventions: cameras are OpenCV (x right, y down, z forward; world-to-camera `w2c`, pixel
intrinsics `K`); a pixel (col, row) is sampled at its centre (col + 0.5, row + 0.5).
Perspective: pixel = f * (x, y) / z + c. Orthographic: pixel = f * (x, y) + c (f in pixels
per metre), depth still the camera z.

Rasterisation enumerates every (triangle, pixel-in-its-bounding-box) pair in vectorised
chunks, keeps the pairs inside the triangle (edge functions >= 0), and resolves
visibility with a 64-bit key (quantised depth << 32 | triangle id) reduced by
`np.minimum.at`, so ties break deterministically by triangle id.
"""
from __future__ import annotations

import dataclasses

import numpy as np

MAX_PAIRS_PER_CHUNK = 4_000_000
DEPTH_LEVELS = 2 ** 30
EMPTY_KEY = np.iinfo(np.int64).max


@dataclasses.dataclass(frozen=True)
class Fragments:
    """Per-pixel visible surface: face id (-1 = empty), (perspective-correct) barycentrics,
    camera depth (inf = empty) and whether the visible side is the face's front."""
    face: np.ndarray          # (H, W) int32
    bary: np.ndarray          # (H, W, 3) float32, sums to 1 on covered pixels
    depth: np.ndarray         # (H, W) float32
    front: np.ndarray         # (H, W) bool

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def project(vertices: np.ndarray, K: np.ndarray, w2c: np.ndarray, orthographic: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """World points (V, 3) -> pixel coordinates (V, 2) and camera depth z (V,)."""
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    if orthographic:
        return cam[:, :2] * np.diag(K)[:2] + K[:2, 2], z
    safe = np.where(np.abs(z) > 1e-12, z, 1e-12)
    xy = (cam[:, :2] / safe[:, None]) * np.diag(K)[:2] + K[:2, 2]
    return xy, z


def _face_boxes(tri_xy: np.ndarray, width: int, height: int):
    """Pixel index ranges whose centres can fall inside each triangle's bounding box."""
    lo = np.ceil(tri_xy.min(1) - 0.5).astype(np.int64)
    hi = np.floor(tri_xy.max(1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    return lo, hi


def _plane_coefficients(tri_xy: np.ndarray, tri_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face affine functions of the pixel position (x, y):
    screen barycentric w_i = E[f, i] . (x, y, 1) (normalised by the signed area, so >= 0
    inside whatever the winding) and the screen-affine depth quantity D[f] . (x, y, 1)
    (`tri_depth` is 1/z under perspective, where 1/z is affine in screen space, and z
    under orthographic projection). E (F, 3, 3), D (F, 3)."""
    a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    rows = []
    for p, q in ((b, c), (c, a), (a, b)):  # w for the vertex opposite edge p -> q
        rows.append(np.stack([-(q[:, 1] - p[:, 1]), q[:, 0] - p[:, 0],
                              (q[:, 1] - p[:, 1]) * p[:, 0] - (q[:, 0] - p[:, 0]) * p[:, 1]], -1))
    E = np.stack(rows, 1) / area[:, None, None]
    D = np.einsum("fic,fi->fc", E, tri_depth)
    return E, D


def _eval(coef: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return coef[..., 0] * x + coef[..., 1] * y + coef[..., 2]


def rasterize(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, w2c: np.ndarray,
              width: int, height: int, near: float = 1e-3, far: float = 100.0,
              orthographic: bool = False) -> Fragments:
    """Z-buffered rasterisation of a triangle mesh (vertices (V, 3) world, faces (F, 3))."""
    vertices, w2c = np.asarray(vertices, np.float64), np.asarray(w2c, np.float64)
    xy, z = project(vertices, np.asarray(K, np.float64), w2c, orthographic)
    tri_xy, tri_z = xy[faces], z[faces]
    lo, hi = _face_boxes(tri_xy, width, height)
    extent = hi - lo + 1
    e1, e2 = tri_xy[:, 1] - tri_xy[:, 0], tri_xy[:, 2] - tri_xy[:, 0]
    doubled_area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    keep = (extent > 0).all(1) & (tri_z > near).all(1) & (tri_z < far).all(1) & (doubled_area > 1e-12)
    face_ids = np.nonzero(keep)[0]
    tri_depth = tri_z[face_ids] if orthographic else 1.0 / tri_z[face_ids]
    E, D = _plane_coefficients(tri_xy[face_ids], tri_depth)
    counts = extent[face_ids, 0] * extent[face_ids, 1]
    keys = np.full(width * height, EMPTY_KEY, np.int64)
    for chunk in _chunks(counts):
        _rasterize_chunk(chunk, counts[chunk], lo[face_ids], extent[face_ids], E, D, near, far, width, keys,
                         orthographic)
    covered = np.nonzero(keys != EMPTY_KEY)[0]
    local = (keys[covered] & 0xFFFFFFFF).astype(np.int64)
    front = _front_facing(vertices, faces, w2c, orthographic)
    return _fragments(covered, local, face_ids, E, D, tri_depth, front, width, height, orthographic)


def _chunks(counts: np.ndarray):
    """Split faces into runs whose total pair count stays under MAX_PAIRS_PER_CHUNK."""
    bounds = np.cumsum(counts) // MAX_PAIRS_PER_CHUNK
    for value in np.unique(bounds):
        yield np.nonzero(bounds == value)[0]


def _rasterize_chunk(local_ids, counts, lo, extent, E, D, near, far, width, keys, orthographic):
    """Enumerate (face, pixel) pairs of the faces' boxes, keep those inside, scatter-min keys."""
    total = int(counts.sum())
    if total == 0:
        return
    pair = np.repeat(local_ids, counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    nx = extent[pair, 0]
    px = lo[pair, 0] + offset % nx
    py = lo[pair, 1] + offset // nx
    x, y = px + 0.5, py + 0.5
    for i in range(3):  # filter edge by edge: each test shrinks the arrays for the next
        inside = _eval(E[pair, i], x, y) >= 0.0
        pair, px, py, x, y = pair[inside], px[inside], py[inside], x[inside], y[inside]
    plane = _eval(D[pair], x, y)
    depth = plane if orthographic else 1.0 / plane
    level = np.clip((depth - near) / (far - near), 0.0, 1.0) * (DEPTH_LEVELS - 1)
    key = (level.astype(np.int64) << 32) | pair
    np.minimum.at(keys, py * width + px, key)


def _fragments(covered, local, face_ids, E, D, tri_depth, front_faces, width, height, orthographic) -> Fragments:
    """Per-pixel outputs for the winning faces (local = index into face_ids / E / D)."""
    x, y = covered % width + 0.5, covered // width + 0.5
    screen = np.stack([_eval(E[local, i], x, y) for i in range(3)], -1)
    plane = _eval(D[local], x, y)
    if orthographic:
        bary, depth_at = screen, plane
    else:  # perspective-correct barycentrics: (screen_i / z_i) / (1 / z)
        bary, depth_at = screen * tri_depth[local] / plane[:, None], 1.0 / plane
    face = np.full(width * height, -1, np.int32)
    face[covered] = face_ids[local]
    out_bary = np.zeros((width * height, 3), np.float32)
    out_bary[covered] = bary
    depth = np.full(width * height, np.inf, np.float32)
    depth[covered] = depth_at
    front = np.zeros(width * height, bool)
    front[covered] = front_faces[face[covered]]
    return Fragments(face.reshape(height, width), out_bary.reshape(height, width, 3),
                     depth.reshape(height, width), front.reshape(height, width))


def _front_facing(vertices, faces, w2c, orthographic: bool = False) -> np.ndarray:
    """Faces whose counter-clockwise (outward) normal points towards the camera -> (F,) bool
    (towards the camera centre under perspective, along -z under orthographic projection)."""
    cam = vertices @ w2c[:3, :3].T + w2c[:3, 3]
    v0, v1, v2 = cam[faces[:, 0]], cam[faces[:, 1]], cam[faces[:, 2]]
    normal = np.cross(v1 - v0, v2 - v0)
    if orthographic:
        return normal[:, 2] < 0.0
    return np.einsum("fi,fi->f", normal, v0) < 0.0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a counter-clockwise mesh."""
    v = np.asarray(vertices, np.float64)
    face_n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def interpolate(fragments: Fragments, attributes: np.ndarray, corner_index: np.ndarray) -> np.ndarray:
    """Interpolate per-corner attributes: attributes (N, C) indexed by corner_index (F, 3) -> (H, W, C)."""
    h, w = fragments.face.shape
    out = np.zeros((h, w, attributes.shape[-1]), np.float32)
    mask = fragments.mask
    out[mask] = interpolate_at(fragments.face[mask], fragments.bary[mask], attributes, corner_index)
    return out


def interpolate_at(face: np.ndarray, bary: np.ndarray, attributes: np.ndarray,
                   corner_index: np.ndarray) -> np.ndarray:
    """Attributes (N, C) at P fragments given their faces (P,) and barycentrics (P, 3) -> (P, C)."""
    corners = corner_index[face]
    out = bary[:, :1] * attributes[corners[:, 0]]
    out += bary[:, 1:2] * attributes[corners[:, 1]]
    out += bary[:, 2:3] * attributes[corners[:, 2]]
    return out
