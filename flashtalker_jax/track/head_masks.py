"""Head-and-neck masks (head_masks/): the person mask above the tracked neck boundary.

The selfie segmenter separates the person from the background but not the head from the
torso; the tracked mesh does. FLAME's 'boundary' region is the ring of vertices where the
neck is cut off. Projected into a frame, the lower edge of that ring (the front of the
neck, where the collar is) is the seam: person
pixels on or above it are head, hair and neck; below it, torso. Beyond the ring's columns
the seam is the lowest row of the upper neck (the neck vertices in the top 15 % of its
height, where it meets the jaw): shoulders beside the neck are torso, hair and ears above
that row are head. The seam is the head model's own neck cut, so it is
as low as that model's neck: FLAME's ends at the base of the neck, the procedural head's
neck is longer and reaches the collar. This is
the head region M the body inpainter of the real-person issue removes and re-fills.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from flashtalker_jax.track import fit
from flashtalker_jax.track.embedding import LandmarkEmbedding

UPPER_NECK_SHARE = 0.15


def vertex_embedding(faces: np.ndarray, vertex_ids: np.ndarray) -> LandmarkEmbedding:
    """An embedding whose points are the given vertices themselves (bary 1 on a corner)."""
    faces = np.asarray(faces)
    face_of = np.array([np.nonzero((faces == v).any(1))[0][0] for v in vertex_ids])
    bary = (faces[face_of] == np.asarray(vertex_ids)[:, None]).astype(np.float64)
    return LandmarkEmbedding(face_of.astype(np.int64), bary, np.asarray(vertex_ids, np.int64))


def ring_pixels(model, vars_: dict, boundary_ids: np.ndarray, cfg, n_shape: int, n_expr: int,
                size: int) -> np.ndarray:
    """(T, R, 2) pixels of the neck-boundary ring in every frame."""
    rig = fit.make_rig(model, vertex_embedding(np.asarray(model.faces), boundary_ids), n_shape, n_expr)
    points = fit.rig_forward(rig, jnp.asarray(vars_["shape"]), jnp.asarray(vars_["expr"]),
                             fit.full_pose({k: jnp.asarray(v) for k, v in vars_.items()}),
                             jnp.asarray(vars_["translation"]))
    return np.asarray(fit.project(points, jnp.asarray(vars_["log_focal"]), size, size, cfg.camera_distance))


def seam_rows(ring: np.ndarray, width: int, beyond: float | None = None) -> np.ndarray:
    """(width,) image row of the seam at each column from one frame's ring (R, 2): the
    ring's lower chain (points on or below the chord from its leftmost to its rightmost
    point), interpolated across its columns; beyond them the row `beyond` (default: the
    ring's top row)."""
    x, y = ring[:, 0], ring[:, 1]
    left, right = np.argmin(x), np.argmax(x)
    chord = np.interp(x, [x[left], x[right]], [y[left], y[right]])
    lower = np.nonzero(y >= chord - 1e-9)[0]
    order = lower[np.argsort(x[lower], kind="stable")]
    level = y.min() if beyond is None else beyond
    return np.interp(np.arange(width) + 0.5, x[order], y[order], left=level, right=level)


def head_mask(person: np.ndarray, ring: np.ndarray, beyond: float | None = None) -> np.ndarray:
    """uint8 (H, W): the person mask where the pixel row is on or above the seam."""
    height, width = person.shape
    rows = np.arange(height)[:, None] + 0.5
    return np.where(rows <= seam_rows(ring, width, beyond)[None, :], person, 0).astype(np.uint8)


def upper_neck_ids(template: np.ndarray, neck_ids: np.ndarray, share: float = UPPER_NECK_SHARE) -> np.ndarray:
    """The neck vertices in the top `share` of the neck's height (where it meets the jaw)."""
    y = template[neck_ids, 1]
    return neck_ids[y >= y.max() - share * (y.max() - y.min())]
