"""A turntable and expression sheet of a FLAME model, for people to look at."""
from __future__ import annotations

import jax
import numpy as np
from PIL import Image, ImageDraw

from flashtalker_jax.flame.lbs import flame_forward
from flashtalker_jax.flame.model import FlameModel, FlameParams
from flashtalker_jax.flame.preview import render_mesh

TURNTABLE_YAWS = (-90, -45, 0, 45, 90, 180)
EXPRESSION_YAW = 20


def demo_poses(model: FlameModel, expr_components: dict) -> tuple[list[str], FlameParams]:
    """Labels and a batch of parameters: neutral, jaw open, each named expression at 1."""
    labels = ["neutral", "jaw open 0.25"] + list(expr_components)
    params = FlameParams.zeros(len(labels), model.n_shape, model.n_expr, model.dtype)
    params = params.replace(jaw_pose=params.jaw_pose.at[1, 0].set(0.25))
    expr = params.expr
    for row, name in enumerate(expr_components, start=2):
        expr = expr.at[row, expr_components[name]].set(1.0)
    return labels, params.replace(expr=expr)


SKIN, IRIS, PUPIL, LIPS = (0.85, 0.85, 0.85), (0.35, 0.22, 0.12), (0.05, 0.05, 0.05), (0.8, 0.5, 0.5)


def face_colors(model: FlameModel, masks: dict | None = None) -> np.ndarray:
    """(F, 3) colours: grey skin, pink lips (when region masks are given), brown iris and
    black pupil on the eyeball faces (vertices skinned only to an eye joint) that look along
    +z from the eye joint at rest."""
    v = np.asarray(model.v_template)
    weights = np.asarray(model.weights)
    joints = np.asarray(model.J_regressor) @ v
    faces = np.asarray(model.faces)
    colors = np.tile(np.asarray(SKIN), (faces.shape[0], 1))
    if masks is not None and "lips" in masks:
        lips = np.zeros(v.shape[0], bool)
        lips[masks["lips"]] = True
        colors[lips[faces].all(1)] = LIPS
    for joint in (3, 4):
        eyeball = weights[:, joint] > 0.999
        centre = v[faces].mean(1)
        face_cos = (centre - joints[joint])[:, 2] / np.maximum(
            np.linalg.norm(centre - joints[joint], axis=1), 1e-12)
        on_eye = eyeball[faces].all(1)
        colors[on_eye & (face_cos > np.cos(0.5))] = IRIS
        colors[on_eye & (face_cos > np.cos(0.22))] = PUPIL
    return colors


def _tile(image: np.ndarray, label: str) -> np.ndarray:
    pil = Image.fromarray(image)
    ImageDraw.Draw(pil).text((4, 4), label, fill=(235, 235, 235))
    return np.asarray(pil)


def render_demo_sheet(model: FlameModel, expr_components: dict, size: int = 192,
                      progress_bar=None, masks: dict | None = None) -> np.ndarray:
    """(H, W, 3) uint8: row 1 the neutral head turning, row 2.. the expressions.

    expr_components: name -> expression index (e.g. procedural.EXPR_COMPONENTS; {} for none).
    progress_bar: optional callable wrapping an iterable (e.g. utils.progress.progress).
    masks: optional region masks (load_region_masks) to colour the lips.
    """
    labels, params = demo_poses(model, expr_components)
    verts = np.asarray(jax.jit(flame_forward)(model, params).vertices)
    faces = np.asarray(model.faces)
    jobs = [(verts[0], yaw, f"yaw {yaw}") for yaw in TURNTABLE_YAWS]
    jobs += [(v, EXPRESSION_YAW, label) for v, label in zip(verts, labels)]
    wrap = progress_bar or (lambda it, **_: it)
    colors = face_colors(model, masks)
    tiles = [_tile(render_mesh(v, faces, size, yaw, colors), label)
             for v, yaw, label in wrap(jobs, total=len(jobs), desc="render", unit="view")]
    per_row = len(TURNTABLE_YAWS)
    blank = np.full_like(tiles[0], tiles[0][0, -1])  # background colour
    rows = [tiles[:per_row]]
    rest = tiles[per_row:]
    for k in range(0, len(rest), per_row):
        chunk = rest[k:k + per_row]
        rows.append(chunk + [blank] * (per_row - len(chunk)))
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def save_png(image: np.ndarray, path) -> None:
    from flashtalker_jax.utils.files import atomic_path
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")

