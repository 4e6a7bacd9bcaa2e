"""Skinning, joint regressor, landmark embeddings, region masks and UV chart of the
procedural head (everything except the blendshape bases)."""
from __future__ import annotations

import numpy as np

from flashtalker_jax.flame.procedural import geometry as geo
from flashtalker_jax.flame.procedural.rest import RestHead, mouth_rows

N_YAW_BINS = 79
NECK_JOINT_TARGET = np.array([0.06, -0.055, -0.02])  # surface side points: centroid on x = 0
JAW_JOINT_TARGET = np.array([0.07, -0.012, 0.012])  # in front of the ears (TMJ)


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def skinning_weights(head: RestHead) -> np.ndarray:
    """(V, 5): root at the neck base, jaw below the mouth, neck elsewhere, eyes on eyeballs."""
    g, v = head.grid, head.vertices[: head.n_head]
    rows = mouth_rows(g)
    rows = np.where(g.side != 0, np.where(g.polar == g.rings[g.mouth_ring], -g.side * 1.5, rows),
                    rows)
    jaw = _smoothstep(-0.5, 1.5, rows)
    jaw *= 1 - _smoothstep(1.0, 1.45, np.abs(g.theta))
    chin_polar = geo.polar_of(np.array([0.0, -0.1, 0.07]))[1]
    jaw *= 1 - _smoothstep(chin_polar, chin_polar + 0.3, g.polar)
    root = 1 - _smoothstep(-0.16, -0.09, v[:, 1])
    jaw *= 1 - root
    w = np.zeros((head.vertices.shape[0], 5))
    w[: head.n_head, 0], w[: head.n_head, 2] = root, jaw
    w[: head.n_head, 1] = 1 - root - jaw
    w[head.eyeballs[0]["ids"], 3] = 1.0
    w[head.eyeballs[1]["ids"], 4] = 1.0
    return w


def _mirror_ids(head: RestHead, ids: np.ndarray) -> np.ndarray:
    g = head.grid
    ring = np.searchsorted(g.rings, g.polar[ids])
    col = np.searchsorted(g.theta_cols, g.theta[ids] - 1e-12)
    return g.base[ring, g.mirror_column(col)]


def _symmetric_cluster(head: RestHead, target: np.ndarray, k: int = 6) -> np.ndarray:
    """k head vertices nearest the left target plus their mirror images (centroid x = 0)."""
    base_ids = head.grid.base[1:].reshape(-1)
    d = np.linalg.norm(head.vertices[base_ids] - target, axis=1)
    left = base_ids[np.argsort(d)[:k]]
    return np.concatenate([left, _mirror_ids(head, left)])


def joint_regressor(head: RestHead) -> np.ndarray:
    """(5, V): each joint is the mean of a vertex set."""
    g = head.grid
    sets = [g.base[-1], _symmetric_cluster(head, NECK_JOINT_TARGET),
            _symmetric_cluster(head, JAW_JOINT_TARGET),
            head.eyeballs[0]["centre_ids"], head.eyeballs[1]["centre_ids"]]
    reg = np.zeros((5, head.vertices.shape[0]))
    for j, ids in enumerate(sets):
        reg[j, ids] = 1.0 / len(ids)
    return reg


def embed(head: RestHead, faces: np.ndarray, theta: float, polar: float, side: int = 0):
    """(face id, barycentric (3,)) of the grid point (theta, polar); on a cut ring `side`
    +1 picks the faces above the cut, -1 (or 0) those below."""
    g = head.grid
    i = int(np.searchsorted(g.rings, polar, side="right") - 1)
    if side > 0 and np.isclose(polar, g.rings[i]):
        i -= 1
    cols = g.theta_cols
    j = int(np.searchsorted(cols, theta, side="right") - 1) % cols.size
    jn = (j + 1) % cols.size
    span = (cols[jn] - cols[j]) % (2 * np.pi)
    u = ((theta - cols[j]) % (2 * np.pi)) / span
    v = (polar - g.rings[i]) / (g.rings[i + 1] - g.rings[i])
    a, d = g.below[i, j], g.below[i, jn]
    b, c = g.base[i + 1, j], g.base[i + 1, jn]
    if v >= u:
        face, weights = g.cell_faces[i, j, 0], {a: 1 - v, b: v - u, c: u}
    else:
        face, weights = g.cell_faces[i, j, 1], {a: 1 - u, c: v, d: u - v}
    bary = np.array([weights.get(int(vid), 0.0) for vid in faces[face]])
    return int(face), bary


def _mouth_points():
    """(theta, polar offset in rings, side) for iBUG 48..67 (subject's right = -theta)."""
    w = geo.MOUTH_HALF_WIDTH
    outer_up = [(-w - 0.02, 0, 0)] + [(t * w, -2.2, 0) for t in (-0.75, -0.35, 0, 0.35, 0.75)]
    outer_lo = [(w + 0.02, 0, 0)] + [(t * w, 2.2, 0) for t in (0.75, 0.35, 0, -0.35, -0.75)]
    inner = [(-w, 0, 0)] + [(t * w, 0, 1) for t in (-0.5, 0, 0.5)]
    inner += [(w, 0, 0)] + [(t * w, 0, -1) for t in (0.5, 0, -0.5)]
    return outer_up + outer_lo + inner


def static_landmarks(head: RestHead, faces: np.ndarray):
    """The 51 static landmarks (iBUG-68 points 17..67) as (face ids, barycentrics)."""
    g = head.grid
    eye_theta, eye_polar = geo.eye_slit_ring()
    mouth_polar = g.rings[g.mouth_ring]
    pts = []
    brow_polar = geo.polar_of(np.array([0.0, 0.043, 0.09]))[1]
    arch = 0.04 * np.sin(np.pi * np.linspace(0, 1, 5))
    for t, a in zip(np.linspace(-0.6, -0.1, 5), arch):  # 17..21 right brow, outer to inner
        pts.append((t, brow_polar - a, 0))
    for t, a in zip(np.linspace(0.1, 0.6, 5), arch):  # 22..26 left brow, inner to outer
        pts.append((t, brow_polar - a, 0))
    tip_polar = geo.polar_of(np.array([0.0, -0.012, 0.118]))[1]
    pts += [(0.0, p, 0) for p in np.linspace(eye_polar, tip_polar, 4)]  # 27..30 nose
    base_polar = geo.polar_of(np.array([0.0, -0.024, 0.1]))[1]
    pts += [(t, base_polar - 0.02 * abs(t) / 0.12, 0) for t in np.linspace(-0.12, 0.12, 5)]
    w = geo.EYE_HALF_WIDTH
    for c, outer in ((-eye_theta, -1), (eye_theta, 1)):  # 36..41 right eye, 42..47 left eye
        corners = (c + outer * w, c - outer * w)
        ring = [(corners[0], 0)] if outer < 0 else [(corners[1], 0)]
        if outer < 0:  # right: outer corner, upper x2 inward, inner corner, lower x2 outward
            ring += [(c - w / 3, 1), (c + w / 3, 1), (corners[1], 0), (c + w / 3, -1), (c - w / 3, -1)]
        else:  # left: inner corner, upper x2 outward, outer corner, lower x2 inward
            ring += [(c - w / 3, 1), (c + w / 3, 1), (corners[0], 0), (c + w / 3, -1), (c - w / 3, -1)]
        pts += [(t, eye_polar, s) for t, s in ring]
    spacing_m = g.rings[g.mouth_ring + 1] - g.rings[g.mouth_ring]
    pts += [(t, mouth_polar + dr * spacing_m, s) for t, dr, s in _mouth_points()]
    out = [embed(head, faces, t, p, s) for t, p, s in pts]
    return np.array([o[0] for o in out]), np.stack([o[1] for o in out])


def contour_landmarks(head: RestHead, faces: np.ndarray):
    """(79, 17) face ids and (79, 17, 3) barycentrics of the jaw contour per yaw bin.

    Bin k < 40 is yaw -k degrees about +y (smplx: index = round(-euler_y)), bins 40..78 are
    +1..+39 degrees. Each contour point slides in azimuth with the yaw so that it stays near
    the silhouette seen by a camera on the +z axis: contour azimuth = rest azimuth - yaw * g,
    g = 1 at the cheeks fading to 0.35 at the chin.
    """
    eye_polar = geo.eye_slit_ring()[1]
    chin_polar = geo.polar_of(np.array([0.0, -0.098, 0.07]))[1]
    side_polar = eye_polar + 0.12
    phi = np.pi * np.arange(17) / 16
    theta0 = -1.3 * np.cos(phi)
    polar = side_polar + (chin_polar - side_polar) * np.sin(phi) ** 1.5
    gain = 0.35 + 0.65 * np.abs(np.cos(phi))
    yaw_deg = np.where(np.arange(N_YAW_BINS) < 40, -np.arange(N_YAW_BINS),
                       np.arange(N_YAW_BINS) - 39)
    idx = np.zeros((N_YAW_BINS, 17), np.int64)
    bary = np.zeros((N_YAW_BINS, 17, 3))
    for b, yaw in enumerate(np.deg2rad(yaw_deg)):
        thetas = np.clip(theta0 - yaw * gain, -1.45, 1.45)
        for k in range(17):
            idx[b, k], bary[b, k] = embed(head, faces, thetas[k], polar[k])
    return idx, bary


def region_masks(head: RestHead) -> dict:
    """FLAME_masks.pkl-style regions (vertex ids) plus the teeth lip rings."""
    g, v = head.grid, head.vertices
    n = head.n_head
    th, po = g.theta, g.polar
    eye_theta, eye_polar = geo.eye_slit_ring()
    mouth_polar = g.rings[g.mouth_ring]
    chin_polar = geo.polar_of(np.array([0.0, -0.1, 0.07]))[1]
    front = np.abs(th) < 1.25
    face = front & (po > 0.75) & (po < chin_polar + 0.05)
    masks = {
        "face": face,
        "forehead": front & (np.abs(th) < 0.9) & (po > 0.6) & (po < eye_polar - 0.22),
        "nose": (np.abs(th) < 0.2) & (po > eye_polar - 0.02) & (po < mouth_polar - 0.12),
        "lips": (th / (geo.MOUTH_HALF_WIDTH + 0.03)) ** 2 + ((po - mouth_polar) / 0.075) ** 2 < 1,
        "neck": po > np.where(front, chin_polar + 0.05, 2.05),
        "scalp": (po < 0.75) | (~front & (po < 1.7) & (np.abs(np.abs(th) - 1.57) > 0.3)),
        "boundary": np.isin(np.arange(n), g.base[-1]),
        "left_ear": (np.abs(th - 1.57) < 0.3) & (np.abs(po - 1.55) < 0.35),
        "right_ear": (np.abs(th + 1.57) < 0.3) & (np.abs(po - 1.55) < 0.35),
    }
    for name, t in (("left_eye_region", eye_theta), ("right_eye_region", -eye_theta)):
        masks[name] = (np.abs(th - t) < 0.3) & (np.abs(po - eye_polar) < 0.2)
    out = {k: np.nonzero(m)[0].astype(np.int64) for k, m in masks.items()}
    out["eye_region"] = np.union1d(out["left_eye_region"], out["right_eye_region"])
    out["left_eyeball"] = head.eyeballs[0]["ids"].astype(np.int64)
    out["right_eyeball"] = head.eyeballs[1]["ids"].astype(np.int64)
    tip_y = v[out["nose"][np.argmax(v[out["nose"], 2])], 1]
    above = v[out["face"], 1] > tip_y
    out["upper_face"], out["lower_face"] = out["face"][above], out["face"][~above]
    out.update(lip_rings(head))
    return out


def lip_rings(head: RestHead) -> dict:
    """15 ordered vertices on the rings just above / below the mouth cut (teeth anchors)."""
    g = head.grid
    cols = np.argsort(np.abs(g.theta_cols))[:15]
    cols = cols[np.argsort(-g.theta_cols[cols])]  # +x first: teeth faces then face forward
    return {"lip_outside_ring_upper": g.base[g.mouth_ring - 1, cols].astype(np.int64),
            "lip_outside_ring_lower": g.base[g.mouth_ring + 1, cols].astype(np.int64)}


HEAD_UV_CENTER, HEAD_UV_RADIUS = np.array([0.41, 0.5]), 0.4
EYE_UV_CENTERS, EYE_UV_RADIUS = np.array([[0.9, 0.8], [0.9, 0.2]]), 0.09


def uv_layout(head: RestHead, faces: np.ndarray):
    """vt (V, 2), ft (F, 3): the head is one disk (crown at the centre, face upright in the
    lower half, ring index -> radius so the denser face rows get more texels), each eyeball a
    small disk. Cuts have zero width in UV, so no two triangles overlap."""
    g = head.grid
    ring_index = np.searchsorted(g.rings, g.polar)
    col = np.searchsorted(g.theta_cols, g.theta - 1e-12)
    angle = -np.pi / 2 + 2 * np.pi * col / g.theta_cols.size - np.pi
    rho = HEAD_UV_RADIUS * ring_index / (g.rings.size - 1)
    vt = np.zeros((head.vertices.shape[0], 2))
    vt[: head.n_head] = HEAD_UV_CENTER + rho[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    for eye, center in zip(head.eyeballs, EYE_UV_CENTERS):
        phi, psi = eye["coords"][:, 0], eye["coords"][:, 1]
        r = EYE_UV_RADIUS * phi / np.pi
        vt[eye["ids"]] = center + r[:, None] * np.stack([np.cos(psi), np.sin(psi)], 1)
    return vt, faces.copy()
