"""Novel views of a synthetic identity (`flashtalker data views`): its frames re-rendered
from cameras turned about the head, with the synthesiser's own renderer and settings.

A monocular clip shows the head within a few degrees of one camera (data_synth.py's
motion: yaw std ~5 deg), so held-out frames of the same camera cannot tell an avatar that
is right in 3D from one fitted to that view only. GGTalker's ablation credits its visual
prior with exactly this ("w/o E-V priors: poor 3D consistency"). A procedural identity's
ground truth can be drawn from anywhere: its mesh (the frames' FLAME parameters through
DATASET/flame), its texture (synth_texture.png) and the shading of DATASET/config.json
(written by `data synth`) are all in the folder. The light is fixed in the world and the
shading Lambertian, so a turned view is the same head under the same light.

Each view is a VHAP folder of the chosen split's frames only (their timestep indices, FLAME
parameters and audio kept; the split listed as `test`), the camera turned by `yaw` degrees
about the vertical axis through the head's centre (the synthesiser's camera looks at it)
and `pitch` about the horizontal one. identity.json records the view, so a folder is never
mistaken for a clip of its own. Yaw 0, pitch 0 reproduces the stored frames up to the
texture's 8-bit rounding (tests/data/test_views.py).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from flashtalker_jax.data import vhap
from flashtalker_jax.data.synth.identity import TEXTURE_FILE
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path, read_json_object


def turned_c2w(c2w_opengl: np.ndarray, centre: np.ndarray, yaw_degrees: float, pitch_degrees: float) -> np.ndarray:
    """Camera-to-world (4, 4) turned about `centre` (3,): yaw about the world's vertical
    (y) axis, then pitch about its horizontal (x) one; the camera keeps its distance to
    the centre and, if it looked at it, still does."""
    yaw, pitch = np.radians(yaw_degrees), np.radians(pitch_degrees)
    turn_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    turn_x = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    about = np.eye(4)
    about[:3, :3] = turn_x @ turn_y
    about[:3, 3] = centre - about[:3, :3] @ centre
    return about @ c2w_opengl


def view_name(identity: str, yaw_degrees: float, pitch_degrees: float) -> str:
    """identity_006_yaw+30_pitch-10 (integral degrees print without a decimal point)."""
    def angle(value):
        return f"{value:+g}"
    return f"{identity}_yaw{angle(yaw_degrees)}_pitch{angle(pitch_degrees)}"


def _synth_settings(identity_dir: Path) -> dict:
    """The render section of DATASET/config.json (the synthesiser's shading)."""
    path = identity_dir.parent / "config.json"
    fix = "views re-render an identity of `flashtalker data synth`, which writes DATASET/config.json beside it"
    saved = read_json_object(path, "data synth config", fix, InputFileError)
    if "render" not in saved:
        raise InputFileError(path, "has no 'render' section: not a data synth config", fix)
    return saved["render"]


def render_views(identity_dir, out_dir, angles: list[tuple[float, float]], split: str = "test",
                 flame_dir=None) -> list[Path]:
    """One view folder per (yaw, pitch) in angles under out_dir (module docstring); returns
    their paths. flame_dir: the identity's FLAME folder (None: DATASET/flame)."""
    from PIL import Image

    from flashtalker_jax.data.synth import frames
    from flashtalker_jax.data.synth.identity import head_centre, pose_meshes, shading
    from flashtalker_jax.flame import load_flame_model, load_region_masks, load_uv_layout

    identity_dir, out_dir = Path(identity_dir), Path(out_dir)
    texture_path = identity_dir / TEXTURE_FILE
    if not texture_path.is_file():
        raise InputFileError(texture_path, "not found: views need a data-synth identity (its texture)",
                             "pass an identity folder written by `flashtalker data synth`")
    render = _synth_settings(identity_dir)
    seq = vhap.read_vhap(identity_dir)
    if split not in seq.splits or not len(seq.splits[split]):
        raise InputFileError(identity_dir, f"has no frames in transforms_{split}.json", "choose another --split")
    rows = np.asarray(seq.splits[split])
    flame_dir = Path(flame_dir) if flame_dir else identity_dir.parent / "flame"
    model = load_flame_model(flame_dir)
    tracks = {key: seq.flame[key][rows] for key in vhap.FLAME_FRAME_KEYS}
    tracks["shape"] = np.repeat(np.asarray(seq.shape, np.float32)[None], len(rows), axis=0)
    vertices = pose_meshes(model, tracks)
    params = {**tracks, "static_offset": np.zeros((len(rows), vertices.shape[1], 3), np.float32)}
    centre = head_centre(np.asarray(model.v_template, np.float64))   # where the synthesiser's camera looks
    vt, ft = load_uv_layout(flame_dir)
    faces = np.asarray(model.faces)
    look = shading(render, faces, load_region_masks(flame_dir))
    with Image.open(texture_path) as image:
        texture = np.asarray(image.convert("RGB"), np.float32) / 255.0
    written = []
    for yaw, pitch in angles:
        out = out_dir / view_name(identity_dir.name, yaw, pitch)
        records = []
        for i, row in enumerate(rows):
            c2w = turned_c2w(seq.c2w[row] @ vhap.OPENGL_TO_OPENCV, centre, yaw, pitch)
            scene = frames.Scene(faces=faces, vt=vt, ft=ft, texture=texture, K=seq.K[row], c2w_opengl=c2w,
                                 width=seq.width, height=seq.height, supersample=render["supersample"],
                                 shading=look, png_compress_level=render["png_compress_level"])
            records += frames.render_frames(out, int(seq.timesteps[row]), vertices[i:i + 1],
                                            {k: v[i:i + 1] for k, v in params.items()}, scene)
        audio = None if seq.audio_path is None else vhap.AUDIO_FILE
        vhap.write_transforms(out, records, {"test": [r["timestep_index"] for r in records]}, seq.fps, audio)
        if audio:
            shutil.copyfile(seq.audio_path, out / audio)
        with atomic_path(out / "identity.json") as tmp:
            tmp.write_text(json.dumps({"view_of": str(identity_dir.resolve()), "split": split,
                                       "yaw_degrees": yaw, "pitch_degrees": pitch}, indent=1))
        written.append(out)
    return written
