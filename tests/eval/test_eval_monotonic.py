"""Jittered or misaligned driving scores worse: the FLAME-landmark LMD and stability score
of the rendered avatar rise with the amplitude of per-frame head-rotation noise, and LMD
rises with a constant head offset (misalignment), against the held-out ground truth."""
from __future__ import annotations

import numpy as np

from flashtalker_jax.data.vhap import read_vhap
from flashtalker_jax.eval import drive
from flashtalker_jax.eval.run import make_context, score_driving

FRAMES = 16


def _scores(renderer, ctx, name, track):
    result = score_driving(renderer, ctx, drive.Driving(name, track), show_progress=False)
    return result["values"]


def test_jitter_and_misalignment_make_lmd_and_stability_worse(eval_runs, eval_renderer):
    seq = read_vhap(eval_runs["identity"])
    indices = drive.heldout_indices(seq, ("test",), FRAMES)
    ref = drive.load_reference(seq, indices, eval_renderer.size, eval_renderer.task_cfg,
                               eval_renderer.audio_dim)
    ctx = make_context(eval_renderer, ref, "self", None, {}, {})
    noise = np.random.default_rng(0).normal(size=(FRAMES, 3)).astype(np.float32)
    jittered = [_scores(eval_renderer, ctx, f"jitter {a}",
                        dict(ref.track, rotation=ref.track["rotation"] + a * noise))
                for a in (0.005, 0.01, 0.02)]  # radians: 0.3 to 1.1 degrees per frame
    for name in ("lmd_flame", "lmd_flame_mouth", "stability_flame"):
        values = [s[name] for s in jittered]
        assert 0 < values[0] < values[1] < values[2], (name, values)
    offset = np.array([1.0, 0.5, 0.0], np.float32)
    shifted = [_scores(eval_renderer, ctx, f"offset {d}",
                       dict(ref.track, translation=ref.track["translation"] + d * offset))
               for d in (0.002, 0.005, 0.01)]  # metres
    values = [s["lmd_flame"] for s in shifted]
    assert 0 < values[0] < values[1] < values[2], values
    # A constant offset adds no motion: stability stays far below the jittered runs'.
    assert max(s["stability_flame"] for s in shifted) < jittered[0]["stability_flame"]
