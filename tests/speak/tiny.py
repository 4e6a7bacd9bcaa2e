"""A tiny avatar and motion run for speak tests, built without training (seconds, not minutes).

- identity/: a 2-frame VHAP identity with its procedural FLAME folder in identity/flame (grey frames, rest pose, the
  synthetic-data camera) - enough for the avatar's camera and pose track;
- avatar/: an untrained FlashTalker avatar (UV-sampled Gaussians on that head) exported in
  the folder format `flashtalker adapt` writes, loaded back through the same reader;
- a2e/: a randomly initialised tiny Audio2Param run in the format `pretrain-a2e` writes.
Untrained weights make arbitrary lip motion; the speak tests check plumbing (frame counts,
audio, files, errors), which does not depend on what was learned.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from flashtalker_jax.config import load_config
from flashtalker_jax.data import vhap
from flashtalker_jax.data.synth.identity import camera

SIZE = 32


def make_identity(root: Path, n_frames: int = 2, moving: bool = False) -> Path:
    """`moving`: every frame gets its own small random head pose, neck, eyes, jaw and
    expression (seed 0), so a replayed pose track shows in the frames."""
    from flashtalker_jax.flame import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame

    ident = root / "identity"
    flame_dir = write_procedural_flame(ident)  # DATA/flame, where adapt looks by default
    template = np.asarray(load_flame_model(flame_dir).v_template)
    cfg = load_config("data_synth", [f"render.width={SIZE}", f"render.height={SIZE}"]).render
    K, c2w = camera(template, cfg)
    rng = np.random.default_rng(0)
    frames = []
    for t in range(n_frames):
        flame = {k: np.zeros(n, np.float32) for k, n in vhap.FLAME_FRAME_SIZES.items()}
        flame.update(expr=np.zeros(100, np.float32), shape=np.zeros(300, np.float32))
        if moving:
            flame = {k: (0.05 * rng.normal(size=v.shape)).astype(np.float32) if k != "shape" else v
                     for k, v in flame.items()}
            flame["translation"] *= 0.1
        record = vhap.write_frame(ident, t, np.full((SIZE, SIZE, 3), 128, np.uint8),
                                  np.full((SIZE, SIZE), 255, np.uint8), flame)
        record.update(vhap.camera_record(K, c2w, SIZE, SIZE), timestep_index=t, camera_index=0)
        frames.append(record)
    vhap.write_transforms(ident, frames, {"train": list(range(n_frames - 1)), "test": [n_frames - 1]},
                          25.0, audio_path=None)
    return ident


def make_avatar(ident: Path, out: Path, audio_dim: int) -> Path:
    from flashtalker_jax.avatar import adapt

    cfg = load_config("adapt_flashtalker", [f"task.resolution={SIZE}", "task.placement.uv_resolution=16",
                                            "task.placement.teeth_per_face=1", f"task.data={ident}",
                                            "task.render.backend=reference"])
    task = cfg.task
    audio = np.random.default_rng(0).normal(size=(4, audio_dim)).astype(np.float32)
    spec = adapt.build_spec(task, adapt.resolve_flame_dir(task, ident), np.zeros(300, np.float32), None,
                            n_frames=1, n_cameras=1, audio=audio)
    model = adapt.make_model_factory(task, spec)(nnx.Rngs(0))
    return adapt.export_avatar(model, task, out)


def make_a2e_run(out: Path, audio_dim: int, n_vertices: int, overrides: tuple[str, ...] = ()) -> Path:
    """Files as motion.tasks.save_motion_model writes them: model.npz, model.json, norms/ and
    templates.npy (row 0, the any-speaker style, is zeros as in identity_templates)."""
    from flashtalker_jax.motion.dataset import Normaliser
    from flashtalker_jax.motion.tasks import make_model_factory, motion_dim, save_norms
    from flashtalker_jax.train.state import key_path_str

    task = load_config("audio2param", ["task.model.d_model=16", "task.model.num_heads=2",
                                       "task.model.decoder_layers=1", "task.model.num_identities=2",
                                       *overrides]).task
    p = motion_dim(task)
    model = make_model_factory(task, audio_dim, 3 * n_vertices)(nnx.Rngs(0))
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "model.npz", **{key_path_str(k): np.asarray(v) for k, v in flat})
    save_norms(out, Normaliser(np.zeros(p, np.float32), np.full(p, 0.1, np.float32)),
               Normaliser(np.zeros(audio_dim, np.float32), np.ones(audio_dim, np.float32)))
    meta = {"kind": task.name, "task": json.loads(json.dumps(task.to_dict(), default=list)),
            "identities": [], "audio_dim": audio_dim, "template_dim": 3 * n_vertices}
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    np.save(out / "templates.npy", np.zeros((1, 3 * n_vertices), np.float32))
    return out
