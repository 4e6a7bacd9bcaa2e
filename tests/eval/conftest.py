"""Session fixtures for `flashtalker eval` tests: one tiny synthesised identity (procedural
FLAME head, espeak speech, 64x64 frames; as tests/avatar/conftest.py makes it) with an
untrained avatar and a random Audio2Param run built by tests/speak/tiny.py. Untrained
weights render an arbitrary head: these tests check plumbing, availability and the
direction of metrics under injected jitter, which do not depend on what was learned."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speak"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))


@pytest.fixture(scope="session")
def eval_runs(tmp_path_factory):
    import tiny

    from flashtalker_jax.audio.features import log_mel_features
    from flashtalker_jax.config import load_config
    from flashtalker_jax.data.synth.identity import synthesize_identity
    from flashtalker_jax.flame.loader import load_flame_model
    from flashtalker_jax.flame.procedural import write_procedural_flame

    root = tmp_path_factory.mktemp("eval")
    flame_dir = write_procedural_flame(root / "head", seed=0)
    cfg = load_config("data_synth", ["render.width=64", "render.height=64", "render.texture_size=256",
                                     "render.workers=1"])
    ident = root / "id0"
    synthesize_identity(ident, load_flame_model(flame_dir), flame_dir, 0, 0, 2.0, cfg, show_progress=False)
    shutil.copytree(flame_dir, ident / "flame")
    rows = log_mel_features(np.zeros(1600, np.float32), 16000, 25.0)
    avatar = tiny.make_avatar(ident, root / "avatar", audio_dim=2 * rows.shape[1])
    a2e = tiny.make_a2e_run(root / "a2e", audio_dim=rows.shape[1],
                            n_vertices=load_flame_model(ident / "flame").n_vertices)
    t = np.arange(16000) / 16000  # 0.6 s of a voiced-like tone, then silence
    wav = root / "speech.wav"
    soundfile.write(wav, 0.3 * np.sin(2 * np.pi * 180 * t) * (t < 0.6), 16000)
    return {"root": root, "identity": ident, "avatar": avatar, "a2e": a2e, "wav": wav}


@pytest.fixture(scope="session")
def eval_renderer(eval_runs):
    """The tiny avatar loaded once: its jitted render, landmark and mesh functions compile once."""
    from flashtalker_jax.eval.render import load_eval_renderer

    return load_eval_renderer(eval_runs["avatar"])
