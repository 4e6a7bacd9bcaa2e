"""Building an avatar reads the FLAME model pickle once: build_spec passes the FLAME
vertices of the model it loaded to load_region_masks, and a later mask read of the same
file (eval's make_context) reuses them. Checked on masks with and without the
upper/lower_face halves (the real FLAME_masks.pkl lacks them: they are derived)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from flashtalker_jax.avatar.renderer import build_spec
from flashtalker_jax.config import load_config
from flashtalker_jax.flame import loader
from flashtalker_jax.flame.procedural import write_procedural_flame


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A procedural FLAME folder and its masks as written (with the halves)."""
    folder = write_procedural_flame(tmp_path_factory.mktemp("head"))
    return folder, loader.load_region_masks(folder)


def fresh_copy(head, tmp_path: Path, with_halves: bool) -> Path:
    """A copy at a new path (no template remembered for it) whose masks keep or lose the halves."""
    folder, masks = head
    copy = tmp_path / "flame"
    copy.mkdir()
    for source in folder.iterdir():
        (copy / source.name).write_bytes(source.read_bytes())
    kept = {k: v for k, v in masks.items() if with_halves or k not in ("upper_face", "lower_face")}
    (copy / loader.MASKS).write_bytes(pickle.dumps(kept))
    return copy


@pytest.fixture
def model_reads(monkeypatch):
    """The model pickles loader reads, in order."""
    reads = []
    original = loader.safe_load_pickle

    def counting(path, *args, **kwargs):
        if Path(path).name in loader.MODEL_NAMES:
            reads.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(loader, "safe_load_pickle", counting)
    return reads


@pytest.mark.parametrize("with_halves", [True, False], ids=["halves_in_file", "halves_derived"])
def test_build_spec_then_eval_masks_read_the_model_pickle_once(head, tmp_path, model_reads, with_halves):
    flame_dir = fresh_copy(head, tmp_path, with_halves)
    task = load_config("adapt_flashtalker", ["task.placement.uv_resolution=16",
                                             "task.placement.teeth_per_face=1"]).task
    spec = build_spec(task, flame_dir, np.zeros(300, np.float32), None, n_frames=1, n_cameras=1)
    masks = loader.load_region_masks(flame_dir)   # as eval's make_context reads them afterwards
    assert [p.name for p in model_reads] == ["generic_model.pkl"]
    for region in ("lips", "upper_face", "lower_face"):
        np.testing.assert_array_equal(masks[region], head[1][region], err_msg=region)
    assert spec.is_lip.any()


def test_the_given_template_is_used_and_matches_the_pickles(head, tmp_path, model_reads):
    flame_dir = fresh_copy(head, tmp_path, with_halves=False)
    model = loader.load_flame_model(flame_dir, with_teeth=True)
    n_flame = loader.load_flame_model(flame_dir).n_vertices
    template = loader.flame_template(model)
    assert template.shape == (n_flame, 3) and n_flame < model.n_vertices   # the teeth dropped
    masks = loader.load_region_masks(flame_dir / loader.MASKS, v_template=template)
    for region in ("upper_face", "lower_face"):   # float32 template, same halves as the float64 pickle
        np.testing.assert_array_equal(masks[region], head[1][region], err_msg=region)
    flipped = template * np.array([1, -1, 1], np.float32)   # upside down: the halves swap
    swapped = loader.load_region_masks(flame_dir / loader.MASKS, v_template=flipped)
    assert 0 < len(swapped["upper_face"]) and set(swapped["upper_face"]) <= set(head[1]["lower_face"])
