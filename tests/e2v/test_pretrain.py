"""Source-target pretraining: the pair iterator is deterministic and resumable, training
lowers the target-frame loss on 2 tiny identities (resume: test_resume.py)."""
import jax
import numpy as np
import pytest
from flax import nnx

from conftest import quick_config
from flashtalker_jax.e2v.task import PairIterator, identity_mask_source, load_identities, make_task, pad_components
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.train.state import merge_model
from flashtalker_jax.train.trainer import fit

STEPS = 6


@pytest.fixture(scope="module")
def frames(tiny_dataset):
    return load_identities(quick_config(tiny_dataset).task)[1]


def test_pairs_deterministic_resumable_and_process_independent(frames):
    a, b = PairIterator(frames, 4, seed=3), PairIterator(frames, 4, seed=3)
    first = [next(a) for _ in range(3)]
    for batch in first:
        np.testing.assert_array_equal(batch["src_image"], next(b)["src_image"])
    state = a.get_state()
    after = next(a)
    c = PairIterator(frames, 4, seed=3)
    c.set_state(state)
    np.testing.assert_array_equal(next(c)["tgt_flame_expr"], after["tgt_flame_expr"])
    halves = [next(PairIterator(frames, 4, seed=3, process_index=i, process_count=2)) for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([h["tgt_image"] for h in halves]), first[0]["tgt_image"])
    pairs = a.pairs(7)
    ids = frames["identity"]
    assert (ids[pairs[:, 0]] == ids[pairs[:, 1]]).all() and (pairs[:, 0] != pairs[:, 1]).all()
    assert not np.array_equal(PairIterator(frames, 4, seed=4).pairs(0), a.pairs(0))


def _config(dataset):
    return quick_config(dataset, "optim.lr=0.005", f"train.steps={STEPS}", "train.async_checkpoint=False")


def test_loss_falls(tiny_dataset, tmp_path):
    cfg = _config(tiny_dataset)
    task = make_task(cfg.task)
    full = fit(task, cfg, tmp_path / "full")
    batch = next(task.make_data(0, 1))   # step 0's pairs
    loss_fn = jax.jit(lambda model, b: task.loss_fn(model, b, None)[0])
    before = float(loss_fn(task.make_model(nnx.Rngs(0)), batch))   # untrained: the base map
    after = float(loss_fn(merge_model(full.graphdef, full.state), batch))
    assert after < before - 1e-3, (before, after)


def test_mixed_identities_mask_source_and_widths(tmp_path):
    tracked, synth, other = (tmp_path / n for n in ("tracked", "synth", "other"))
    (tracked / "head_masks").mkdir(parents=True)
    synth.mkdir()
    (synth / "identity.json").write_text("{}")
    other.mkdir()
    assert identity_mask_source(tracked, "head") == "head"
    assert identity_mask_source(synth, "head") == "fg"     # a synthetic render is the head alone
    assert identity_mask_source(other, "fg") == "fg"
    with pytest.raises(InputFileError, match="head_masks"):
        identity_mask_source(other, "head")
    parts = [{"flame_expr": np.ones((2, 3), np.float32)}, {"flame_expr": np.full((1, 5), 2, np.float32)}]
    pad_components(parts, ("flame_expr",))
    np.testing.assert_array_equal(parts[0]["flame_expr"], [[1, 1, 1, 0, 0]] * 2)
    np.testing.assert_array_equal(parts[1]["flame_expr"], [[2] * 5])
