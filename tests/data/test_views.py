"""`flashtalker data views`: a synthetic identity's test frames re-rendered from turned
cameras. The independent reference is the synthesiser's own output: with the camera not
turned the views must be the stored frames (up to the texture's 8-bit PNG rounding)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from flashtalker_jax.cli.main import main
from flashtalker_jax.data.synth.views import render_views, turned_c2w, view_name
from flashtalker_jax.data.vhap import read_vhap
from flashtalker_jax.errors import InputFileError


def _read(path):
    return np.asarray(Image.open(path), np.int16)


@pytest.fixture(scope="module")
def views(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("views")
    paths = render_views(tiny_dataset / "identity_001", out, [(0.0, 0.0), (30.0, 0.0)])
    return dict(zip(("front", "turned"), paths))


def test_unturned_view_is_the_stored_test_frames(tiny_dataset, views):
    source, view = read_vhap(tiny_dataset / "identity_001"), read_vhap(views["front"])
    rows = np.asarray(source.splits["test"])
    np.testing.assert_array_equal(view.timesteps, source.timesteps[rows])
    np.testing.assert_array_equal(view.splits["test"], np.arange(len(rows)))
    for key in ("expr", "rotation", "jaw_pose"):
        np.testing.assert_array_equal(view.flame[key], source.flame[key][rows])
    np.testing.assert_allclose(view.c2w, source.c2w[rows], atol=1e-9)
    np.testing.assert_array_equal(view.audio, source.audio)
    for i, row in enumerate(rows):
        # The synthesiser samples its float texture, the views its 8-bit PNG (<= 0.5/255 apart
        # per texel): the renders may round one level apart, never more.
        assert np.abs(_read(view.image_paths[i]) - _read(source.image_paths[row])).max() <= 1
        assert np.abs(_read(view.mask_paths[i]) - _read(source.mask_paths[row])).max() <= 1
    record = json.loads((views["front"] / "identity.json").read_text())
    assert (record["yaw_degrees"], record["pitch_degrees"], record["split"]) == (0.0, 0.0, "test")


def test_turned_view_moves_the_camera_about_the_head(tiny_dataset, views):
    front, turned = read_vhap(views["front"]), read_vhap(views["turned"])
    assert views["turned"].name == "identity_001_yaw+30_pitch+0" == view_name("identity_001", 30, 0)
    def heading(c2w):   # of the optical axis (OpenCV +z) about the vertical, degrees
        return np.degrees(np.arctan2(c2w[0, 2], c2w[2, 2]))

    for before, after in zip(front.c2w, turned.c2w):
        assert (heading(after) - heading(before) + 180.0) % 360.0 - 180.0 == pytest.approx(30.0, abs=1e-6)
    mask_front, mask_turned = (np.stack([_read(p) for p in seq.mask_paths]) > 127 for seq in (front, turned))
    assert mask_turned.mean() > 0.05                        # the head is in view
    assert (mask_front != mask_turned).mean() > 0.02        # and seen from elsewhere


def test_turned_c2w_keeps_distance_and_aim():
    centre = np.array([0.1, -0.2, 0.05])
    c2w = np.eye(4)
    c2w[:3, 3] = centre + [0.0, 0.0, 1.2]                   # looks down -z (OpenGL) at the centre
    for yaw, pitch in ((30.0, 0.0), (-45.0, 10.0), (0.0, -20.0)):
        turned = turned_c2w(c2w, centre, yaw, pitch)
        offset = turned[:3, 3] - centre
        assert np.linalg.norm(offset) == pytest.approx(1.2)
        np.testing.assert_allclose(-turned[:3, 2], -offset / 1.2, atol=1e-12)   # still aimed at it
        np.testing.assert_allclose(turned[:3, :3] @ turned[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(turned_c2w(c2w, centre, 0.0, 0.0), c2w)


def test_views_refuse_folders_the_synthesiser_did_not_write(tiny_dataset, tmp_path, capsys):
    copy = tmp_path / "ds" / "identity_001"
    shutil.copytree(tiny_dataset / "identity_001", copy)
    with pytest.raises(InputFileError, match="config.json"):     # no DATASET/config.json beside it
        render_views(copy, tmp_path / "out", [(30.0, 0.0)])
    (copy / "synth_texture.png").unlink()
    assert main(["data", "views", "--data", str(copy), "--out", str(tmp_path / "out"), "--yaw", "30"]) != 0
    err = capsys.readouterr().err
    assert "synth_texture.png" in err and "Traceback" not in err
