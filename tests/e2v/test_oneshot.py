"""One-shot: a prior folder + one frame -> an avatar folder that renderer.load_renderer loads
and renders; a damaged prior folder raises ModelFileError naming the file."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import quick_config
from flashtalker_jax.e2v.oneshot import oneshot
from flashtalker_jax.e2v.prior import write_prior
from flashtalker_jax.e2v.task import build_geometry, make_generator, resolve_flame_dir
from flashtalker_jax.errors import ModelFileError


@pytest.fixture(scope="module")
def prior(tiny_dataset, tmp_path_factory):
    cfg = quick_config(tiny_dataset).task
    generator = make_generator(cfg, build_geometry(cfg, resolve_flame_dir(cfg, tiny_dataset)), nnx.Rngs(0))
    return write_prior(tmp_path_factory.mktemp("run") / "prior", generator, cfg, steps=0)


def test_oneshot_writes_a_loadable_avatar(tiny_dataset, prior, tmp_path):
    from flashtalker_jax.avatar.renderer import load_renderer, render
    from flashtalker_jax.avatar.export import view_at
    from flashtalker_jax.data.vhap import read_vhap
    from flashtalker_jax.flame.model import FlameParams

    data = tiny_dataset / "identity_001"
    report = oneshot(prior.parent, "0", data, tmp_path / "avatar")
    assert report["seconds_total"] > 0 and report["gaussians"] > 0
    renderer, task_cfg = load_renderer(tmp_path / "avatar")
    seq = read_vhap(data)
    track = {f"flame_{k}": jnp.asarray(v[:1]) for k, v in seq.flame.items()}
    params = FlameParams.from_track(track, prefix="flame_", n_expr=renderer.model.flame.expr_dirs.shape[-1])
    folder_view = {"viewmat": seq.w2c[0], "K": seq.K[0], "width": seq.width}
    viewmat, K = view_at(folder_view, task_cfg.resolution)
    result = render(renderer, params, jnp.asarray(viewmat)[None], jnp.asarray(K)[None])
    rgb = np.asarray(result.rgb)
    assert rgb.shape == (1, 64, 64, 3) and np.isfinite(rgb).all()
    assert float(np.asarray(result.alpha).max()) > 0.5   # the head is drawn


def test_damaged_prior_names_the_file(tiny_dataset, prior, tmp_path):
    import shutil

    bad = tmp_path / "prior"
    shutil.copytree(prior, bad)
    (bad / "generator.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelFileError, match="generator.npz"):
        oneshot(bad, "0", tiny_dataset / "identity_001", tmp_path / "avatar")
    (bad / "meta.json").unlink()
    with pytest.raises(ModelFileError, match="meta.json"):
        oneshot(bad, "0", tiny_dataset / "identity_001", tmp_path / "avatar")


def test_oneshot_of_a_tracked_clip_is_scored_against_its_head_masks(tiny_dataset, prior, tmp_path):
    """The prior (trained on fg masks: data-synth heads) draws a head, so the one-shot avatar
    of a folder with head_masks/ (a `track` output: its fg masks hold the torso) evaluates
    against those; a data-synth folder keeps its fg masks."""
    import json
    import shutil

    from PIL import Image

    assert json.loads((prior / "config.json").read_text())["mask_source"] == "fg"
    tracked = tmp_path / "clips" / "tracked"
    shutil.copytree(tiny_dataset / "identity_001", tracked)
    (tmp_path / "clips" / "flame").symlink_to(tiny_dataset / "flame")   # as DATASET/flame
    (tracked / "identity.json").unlink()
    (tracked / "head_masks").mkdir()
    for image in sorted((tracked / "images").iterdir()):
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(tracked / "head_masks" / image.name)
    oneshot(prior.parent, "0", tracked, tmp_path / "avatar_tracked")
    oneshot(prior.parent, "0", tiny_dataset / "identity_001", tmp_path / "avatar_synth")
    sources = [json.loads((tmp_path / name / "config.json").read_text())["mask_source"]
               for name in ("avatar_tracked", "avatar_synth")]
    assert sources == ["head", "fg"]
