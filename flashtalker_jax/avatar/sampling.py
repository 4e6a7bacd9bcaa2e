"""Where the template Gaussians sit on the mesh: their triangle and barycentric point.

Two placements, chosen by `config.placement.mode`:
- "per_face" (GaussianAvatars): one Gaussian at the centroid of every triangle (or of the
  triangles in chosen region masks); the count then changes by binding-aware
  densification and pruning (avatar/densify.py).
- "uv" (FlashTalker): a regular grid of resolution x resolution points over the UV map;
  every grid point inside a UV triangle becomes a Gaussian on that triangle at the
  point's barycentric coordinates. Equal UV area gets equal numbers of Gaussians, so the
  count follows the resolution (about coverage * resolution^2) instead of the topology.
  Grid point (i, j) is at ((j + 0.5) / res, (i + 0.5) / res); where UV triangles overlap,
  the lowest face id wins.
Triangles without UV coordinates (the teeth appended after the FLAME faces) get
`teeth_per_face` Gaussians each at fixed interior barycentric points.

Every Gaussian also gets a region id (UPPER, LOWER, OTHER) from the FLAME region masks,
used by the disentangled cross-region attention, and an initial spacing: the distance to
its neighbours on the template surface, from which its initial scale is set.
Everything here runs once on the host in numpy.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from flashtalker_jax.errors import ConfigError

UPPER, LOWER, OTHER = 0, 1, 2
REGION_NAMES = ("upper", "lower", "other")
MAX_PAIRS_PER_CHUNK = 2_000_000
# Interior barycentric points for teeth Gaussians: centroid first, then points pulled
# towards each corner, so k Gaussians per face spread over it for k up to 7.
TEETH_BARYCENTRICS = np.array([[1, 1, 1], [4, 1, 1], [1, 4, 1], [1, 1, 4],
                               [1, 4, 4], [4, 1, 4], [4, 4, 1]], np.float64)
TEETH_BARYCENTRICS /= TEETH_BARYCENTRICS.sum(1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Placement:
    """face_ids (N,) int32; barycentrics (N, 3) float32 (rows sum to 1); region (N,) int32
    in {UPPER, LOWER, OTHER}; spacing (N,) float32 world distance between neighbouring
    Gaussians on the template mesh; is_teeth (N,) bool."""
    face_ids: np.ndarray
    barycentrics: np.ndarray
    region: np.ndarray
    spacing: np.ndarray
    is_teeth: np.ndarray

    @property
    def count(self) -> int:
        return int(self.face_ids.shape[0])


def uv_grid_samples(vt: np.ndarray, ft: np.ndarray, resolution: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(face_ids (N,), barycentrics (N, 3)) of the UV grid points inside UV triangles."""
    if resolution < 1:
        raise ConfigError(f"placement.uv_resolution={resolution} must be >= 1")
    tri = vt[ft].astype(np.float64) * resolution - 0.5  # grid index space: point j sits at j
    lo = np.clip(np.ceil(tri.min(1)), 0, resolution - 1).astype(np.int64)
    hi = np.clip(np.floor(tri.max(1)), 0, resolution - 1).astype(np.int64)
    counts = np.where((hi >= lo).all(1), (hi - lo + 1).prod(1), 0)
    best = np.full(resolution * resolution, -1, np.int64)
    best_bary = np.zeros((resolution * resolution, 3))
    start = 0
    while start < len(ft):
        stop = start + max(1, int(np.searchsorted(np.cumsum(counts[start:]), MAX_PAIRS_PER_CHUNK)))
        _rasterise_chunk(tri, lo, hi, counts, start, min(stop, len(ft)), resolution, best, best_bary)
        start = stop
    keep = np.flatnonzero(best >= 0)
    return best[keep].astype(np.int32), best_bary[keep].astype(np.float32)


def _rasterise_chunk(tri, lo, hi, counts, start, stop, resolution, best, best_bary):
    faces = np.repeat(np.arange(start, stop), counts[start:stop])
    if faces.size == 0:
        return
    offset = np.arange(faces.size) - np.repeat(np.cumsum(counts[start:stop]) - counts[start:stop],
                                              counts[start:stop])
    width = hi[faces, 0] - lo[faces, 0] + 1
    u = lo[faces, 0] + offset % width
    v = lo[faces, 1] + offset // width
    a, b, c = tri[faces, 0], tri[faces, 1], tri[faces, 2]
    p = np.stack([u, v], 1).astype(np.float64)
    bary = _barycentric_2d(p, a, b, c)
    inside = (bary >= -1e-9).all(1)
    cell = (v * resolution + u)[inside]
    faces, bary = faces[inside], bary[inside]
    # Lowest face id wins: within the chunk take each cell's first (lowest) face; earlier
    # chunks hold lower face ids, so only cells still unset are written.
    order = np.lexsort((faces, cell))
    cell, faces, bary = cell[order], faces[order], bary[order]
    first = np.ones(cell.size, bool)
    first[1:] = cell[1:] != cell[:-1]
    first &= best[cell] < 0
    best[cell[first]] = faces[first]
    best_bary[cell[first]] = bary[first]


def _barycentric_2d(p, a, b, c):
    """Barycentric coordinates (n, 3) of 2-D points p in triangles (a, b, c); degenerate
    triangles give NaN, which fails every inside test."""
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    return np.stack([1 - l1 - l2, l1, l2], 1)


def faces_in_masks(faces: np.ndarray, region_masks: Mapping[str, np.ndarray],
                   names: Sequence[str], group: str) -> np.ndarray:
    """(F,) bool: at least two of the face's vertices are in the union of the named masks.
    Names the mask file lacks are skipped; none of them present is a ConfigError."""
    present = [n for n in names if n in region_masks]
    if not present:
        raise ConfigError(f"placement.{group}_masks={list(names)}: none of these regions is in "
                          f"the mask file (it has {sorted(region_masks)})")
    n_vertices = int(faces.max()) + 1
    flag = np.zeros(n_vertices, bool)
    for name in present:
        ids = np.asarray(region_masks[name])
        flag[ids[ids < n_vertices]] = True
    return flag[faces].sum(1) >= 2


def face_regions(faces: np.ndarray, region_masks: Mapping[str, np.ndarray],
                 upper_masks: Sequence[str], lower_masks: Sequence[str]) -> np.ndarray:
    """Region id of every face: UPPER / LOWER when it is in the named upper / lower masks
    (see faces_in_masks; upper wins where both hold), else OTHER."""
    region = np.full(len(faces), OTHER, np.int32)
    region[faces_in_masks(faces, region_masks, lower_masks, "lower")] = LOWER
    region[faces_in_masks(faces, region_masks, upper_masks, "upper")] = UPPER
    return region


def _triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces].astype(np.float64)
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def build_placement(mode: str, template: np.ndarray, faces: np.ndarray, vt: np.ndarray,
                    ft: np.ndarray, region_masks: Mapping[str, np.ndarray], *,
                    uv_resolution: int, teeth_per_face: int, upper_masks: Sequence[str],
                    lower_masks: Sequence[str], per_face_masks: Sequence[str] = ()) -> Placement:
    """The template placement on a mesh whose first len(ft) faces have UV coordinates and
    whose remaining faces (if any) are teeth. template (V, 3): canonical vertices.
    per_face_masks: "per_face" binds only the faces in these region masks (a partial
    avatar for quick runs and tests; empty: every face)."""
    n_uv_faces = len(ft)
    if n_uv_faces > len(faces):
        raise ConfigError(f"UV layout has {n_uv_faces} faces but the mesh only {len(faces)}")
    if not 0 <= teeth_per_face <= len(TEETH_BARYCENTRICS):
        raise ConfigError(f"placement.teeth_per_face={teeth_per_face} must be in "
                          f"[0, {len(TEETH_BARYCENTRICS)}]")
    areas = _triangle_areas(template, faces)
    if mode == "uv":
        face_ids, bary = uv_grid_samples(vt, ft, uv_resolution)
        uv_areas = _triangle_areas(np.pad(vt, ((0, 0), (0, 1))), ft)
        stretch = np.sqrt(areas[:n_uv_faces] / np.maximum(uv_areas, 1e-20))
        spacing = stretch[face_ids] / uv_resolution
    elif mode == "per_face":
        face_ids = np.arange(n_uv_faces, dtype=np.int32)
        if per_face_masks:
            chosen = faces_in_masks(faces[:n_uv_faces], region_masks, per_face_masks, "per_face")
            face_ids = face_ids[chosen]
        bary = np.full((len(face_ids), 3), 1 / 3, np.float32)
        spacing = np.sqrt(areas[face_ids])
    else:
        raise ConfigError(f"placement.mode={mode!r}: use 'uv' or 'per_face'")
    teeth_faces = np.arange(n_uv_faces, len(faces), dtype=np.int32)
    teeth_ids = np.repeat(teeth_faces, teeth_per_face)
    teeth_bary = np.tile(TEETH_BARYCENTRICS[:teeth_per_face], (len(teeth_faces), 1))
    teeth_spacing = np.sqrt(areas[teeth_ids] / max(teeth_per_face, 1))
    region = face_regions(faces[:n_uv_faces], region_masks, upper_masks, lower_masks)
    return Placement(
        face_ids=np.concatenate([face_ids, teeth_ids]).astype(np.int32),
        barycentrics=np.concatenate([bary, teeth_bary]).astype(np.float32),
        region=np.concatenate([region[face_ids], np.full(len(teeth_ids), LOWER)]).astype(np.int32),
        spacing=np.concatenate([spacing, teeth_spacing]).astype(np.float32),
        is_teeth=np.concatenate([np.zeros(len(face_ids), bool), np.ones(len(teeth_ids), bool)]))
