"""A tracked folder with fewer expression components than the head (flashtalker track
writes 50; FLAME has 100) trains: the frame refinement and its prior read the track
zero-padded. Before: 'add got incompatible shapes for broadcasting: (1, 50), (1, 100)'."""
import shutil

import numpy as np
import pytest

from flashtalker_jax.cli.main import main

from test_adapt import OVERRIDES


@pytest.mark.slow
def test_adapt_on_a_track_with_50_expressions(tiny_identity, tmp_path):
    data = tmp_path / "narrow"
    shutil.copytree(tiny_identity, data)
    for path in sorted((data / "flame_param").glob("*.npz")):
        with np.load(path) as saved:
            arrays = dict(saved)
        arrays["expr"] = arrays["expr"][..., :50]
        np.savez(path, **arrays)
    run = tmp_path / "run"
    steps = ["--config.train.steps=4", "--config.train.checkpoint_every=4", "--config.task.refine_start=0",
             "--config.task.eval_max_frames=2"]
    assert main(["adapt", "--data", str(data), "--out", str(run), *OVERRIDES, *steps]) == 0
    assert (run / "avatar" / "state.npz").is_file()
