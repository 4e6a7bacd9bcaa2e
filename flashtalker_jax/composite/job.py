"""`flashtalker adapt-body`: make a real-footage avatar folder speak in the person's frame.

After `flashtalker adapt --config adapt_real.py` (the head over the frame), this job
  1. renders the avatar at the tracked parameters of `body.train_frames` train-split frames
     (evenly spread) and of `body.eval_frames` held-out test frames,
  2. trains the body inpainter on the train ones (composite/train_inpainter.py: run folder
     OUT with checkpoints, resumable) and copies OUT/inpainter into AVATAR/inpainter,
  3. writes the body loop into AVATAR/body (composite/body.py) with, as its head masks,
     the loop frames' own heads as the avatar draws them (alpha > 0.5 at their tracked
     parameters): the compositor removes those and the new head, so a recorded open jaw
     cannot show below a new closed one, while hair the avatar does not draw stays the
     frame's (the pose is the frame's own),
  4. reports the seam error on the held-out frames: the trained inpainter against the
     untrained one (the plain paste of the head into the hole), both at the inference
     radius.
The avatar folder stays self-contained: speak reads only it.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ConfigError


def frame_rows(rows: np.ndarray, count: int) -> np.ndarray:
    """`count` rows evenly spread over `rows` (all of them when there are fewer)."""
    from flashtalker_jax.eval.plots import pick_frames

    return rows[pick_frames(len(rows), count)]


def render_arrays(renderer, seq, rows: np.ndarray, show_progress: bool = True) -> dict[str, np.ndarray]:
    """The inpainter's arrays (train_inpainter.ARRAY_KEYS) of frames `rows`, uint8: the
    avatar's render at their tracked parameters, the frames, and as head_mask the frame's
    own head as the avatar draws it (alpha > 0.5 of that render; composite/real.py: what
    the compositor removes besides the new head)."""
    from flashtalker_jax.avatar.frames import audio_frame_features, load_frames
    from flashtalker_jax.eval.render import DRIVE_KEYS

    audio = audio_frame_features(seq) if renderer.audio_dim else None
    frames = load_frames(seq, rows, renderer.size, audio)
    track = {k: frames[f"flame_{k}"] for k in DRIVE_KEYS}
    if audio is not None:
        track["audio"] = frames["audio"]
    rendered = renderer.render(track, frames["viewmat"], frames["K"], desc="render heads",
                               show_progress=show_progress)
    to8 = lambda x: np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)  # noqa: E731
    return {"head_rgb": to8(rendered.rgb), "head_alpha": to8(rendered.alpha), "frame": frames["image"],
            "head_mask": np.where(rendered.alpha > 0.5, 255, 0).astype(np.uint8)}


def _install(src: Path, dst: Path) -> None:
    """Copy folder src to dst, replacing it only once the copy is complete."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def adapt_body(avatar, data, config, out, *, source_video=None, resume: bool = False,
               show_progress: bool = True) -> dict:
    """The whole job (module docstring); returns the report."""
    from flashtalker_jax.avatar.frames import split_indices
    from flashtalker_jax.composite.body import loop_rows, write_body_loop
    from flashtalker_jax.composite.inpainter import load_inpainter, make_inpainter
    from flashtalker_jax.composite.real import BODY_DIR, INPAINTER_DIR, is_real_avatar
    from flashtalker_jax.composite.train_inpainter import evaluate, train_inpainter
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.eval.render import load_eval_renderer
    from flax import nnx

    clock = time.perf_counter()
    renderer = load_eval_renderer(avatar, config.body.batch)
    if not is_real_avatar(renderer.task_cfg):
        raise ConfigError(f"{renderer.avatar_dir} was not trained on real footage (its head is the whole "
                          "picture): adapt-body is for avatars of `flashtalker adapt --config adapt_real.py`")
    seq = read_vhap(data)
    seconds = {}
    train_rows = frame_rows(seq.camera_rows(rows=split_indices(seq, ("train",))), config.body.train_frames)
    test_rows = frame_rows(seq.camera_rows(rows=split_indices(seq, ("test", "val"))), config.body.eval_frames)
    train = render_arrays(renderer, seq, train_rows, show_progress)
    held_out = render_arrays(renderer, seq, test_rows, show_progress)
    seconds["render"] = time.perf_counter() - clock
    clock = time.perf_counter()
    trained = train_inpainter(train, config, out, resume=resume)
    seconds["train"] = time.perf_counter() - clock
    if trained["inpainter"] is None:
        return {"status": trained["status"], "out": str(out), "seconds": seconds}
    clock = time.perf_counter()
    _install(Path(trained["inpainter"]), renderer.avatar_dir / INPAINTER_DIR)
    loop_heads = render_arrays(renderer, seq, loop_rows(seq, config.body.loop_frames), show_progress)["head_mask"]
    loop = write_body_loop(data, renderer.avatar_dir / BODY_DIR, config.body.loop_frames, config.body.crf,
                           source_video, head_masks=loop_heads > 127)
    seconds["body_loop"] = time.perf_counter() - clock
    net, cfg = load_inpainter(renderer.avatar_dir / INPAINTER_DIR)
    radius = int(cfg.inference_dilation)
    untrained = make_inpainter(config.task, nnx.Rngs(config.train.seed))  # zero last layer: the plain paste
    seam = {"trained": evaluate(net, held_out, radius), "untrained (plain paste)": evaluate(untrained, held_out, radius)}
    return {"status": trained["status"], "avatar": str(renderer.avatar_dir), "data": str(data), "out": str(out),
            "steps": trained["steps"], "train_frames": len(train_rows), "heldout_frames": len(test_rows),
            "inference_dilation_px": radius, "heldout_seam": seam, "body_loop": loop, "seconds": seconds}
