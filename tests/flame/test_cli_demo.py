"""`flashtalker head demo` writes a sheet whose jaw-open tile shows the mouth opening."""
from __future__ import annotations

import numpy as np
from PIL import Image

from flashtalker_jax.cli.main import main
from flashtalker_jax.flame.demo import TURNTABLE_YAWS


def test_head_demo_sheet(flame_dir, tmp_path):
    size = 64
    assert main(["head", "demo", "--out", str(tmp_path), "--flame", str(flame_dir),
                 "--size", str(size), "--named-expressions"]) == 0
    sheet = np.asarray(Image.open(tmp_path / "head_demo.png"))
    cols = len(TURNTABLE_YAWS)
    assert sheet.shape == (3 * size, cols * size, 3)
    tiles = sheet.reshape(3, size, cols, size, 3).transpose(0, 2, 1, 3, 4).reshape(-1, size, size, 3)
    neutral, jaw_open = tiles[cols], tiles[cols + 1]
    assert neutral.std() > 20  # a head, not an empty frame
    # the open mouth shows the dark-red interior that the closed mouth hides
    red = lambda t: np.sum((t[..., 0] > 40) & (t[..., 1] < 25) & (t[..., 0] > 2 * t[..., 2]))
    assert red(jaw_open[size // 3:]) > red(neutral[size // 3:]) + 3
