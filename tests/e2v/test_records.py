"""e2v pretraining from a built TFDS dataset (e2v/records.py): the record reader's batches
equal the in-memory PairIterator's array for array (same seed, steps, 1 and 2 processes,
mask_source="head" on a tracked-like identity, padded widths), resume continues the
stream on any process count, and damaged or old builds are refused with the fix."""
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import quick_config
from flashtalker_jax.data.tfds_builder import build
from flashtalker_jax.e2v.records import is_built, make_record_data
from flashtalker_jax.e2v.task import PairIterator, load_identities, make_task, resolve_flame_dir
from flashtalker_jax.errors import InputFileError

BATCH = 4


@pytest.fixture(scope="module")
def built(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2v_tfds") / "built"
    build(tiny_dataset, out)
    return out


@pytest.fixture(scope="module")
def mixed(tiny_dataset, tmp_path_factory):
    """(identity folders, their build): a data-synth identity; one made like a tracked
    real clip (no identity.json, head_masks/ as `track` writes them, 50 expression
    coefficients beside the synthetic 100); one with neither head masks nor identity.json."""
    root = tmp_path_factory.mktemp("e2v_mixed")
    (root / "src").mkdir()
    (root / "src" / "a_synth").symlink_to(tiny_dataset / "identity_000")
    for name in ("b_tracked", "c_plain"):
        shutil.copytree(tiny_dataset / "identity_001", root / "src" / name)
        (root / "src" / name / "identity.json").unlink()
    tracked = root / "src" / "b_tracked"
    for path in (tracked / "flame_param").glob("*.npz"):
        params = dict(np.load(path))
        np.savez(path, **{**params, "expr": params["expr"][..., :50]})
    (tracked / "head_masks").mkdir()
    for i, image in enumerate(sorted((tracked / "images").iterdir())):
        head = np.zeros((64, 64), np.uint8)
        head[8:40, 10 + i % 7:54] = 255           # differs from the fg mask and frame to frame
        Image.fromarray(head).save(tracked / "head_masks" / image.name)
    build(root / "src", root / "built")
    return root / "src", root / "built"


def _config(dataset, *overrides):
    return quick_config(dataset, f"task.batch_size={BATCH}", *overrides).task


def assert_same_batches(want: list[dict], got: list[dict]) -> None:
    for a, b in zip(want, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert (a[key].dtype, a[key].shape) == (b[key].dtype, b[key].shape), key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def take(iterator, n: int) -> list[dict]:
    return [next(iterator) for _ in range(n)]


def test_record_batches_equal_the_in_memory_batches(tiny_dataset, built):
    assert is_built(built) and not is_built(tiny_dataset)
    assert resolve_flame_dir(_config(built), built) == built / "flame"      # the build carries its FLAME model
    frames = load_identities(_config(tiny_dataset))[1]
    make_data = make_record_data(_config(built))
    for count in (1, 2):
        for index in range(count):
            assert_same_batches(take(PairIterator(frames, BATCH, 0, index, count), 3), take(make_data(index, count), 3))
    memory = PairIterator(frames, BATCH, 0)
    take(memory, 2)
    switched = make_data(0, 1)           # the in-memory run's checkpointed state, read from records
    switched.set_state(memory.get_state())
    assert_same_batches([next(memory)], [next(switched)])
    other = make_record_data(_config(built, "task.data_seed=1"))(0, 1)
    assert not np.array_equal(next(other)["tgt_image"], next(make_data(0, 1))["tgt_image"])


def test_pretrain_e2v_reads_a_build_through_the_record_reader(tiny_dataset, built):
    """make_task (what `pretrain-e2v --data` runs) picks the reader by the folder: a build
    gives the record reader, identity folders PairIterator, the same batches either way."""
    from_build, from_folders = make_task(_config(built)).make_data(0, 1), make_task(_config(tiny_dataset)).make_data(0, 1)
    assert not isinstance(from_build, PairIterator) and isinstance(from_folders, PairIterator)
    assert_same_batches(take(from_folders, 2), take(from_build, 2))


def test_head_masks_and_widths_of_mixed_identities(mixed):
    source, built = mixed
    head = ("task.mask_source=head", "task.max_identities=2")
    frames = load_identities(_config(source, *head))[1]
    assert frames["flame_expr"].shape[1] == 100 and (frames["flame_expr"][frames["identity"] == 1, 50:] == 0).all()
    assert_same_batches(take(PairIterator(frames, BATCH, 0), 4), take(make_record_data(_config(built, *head))(0, 1), 4))
    with pytest.raises(InputFileError, match="c_plain was built without head masks"):
        make_record_data(_config(built, "task.mask_source=head", "task.identity_start=2"))


def test_resume_continues_the_stream_on_any_process_count(built):
    make_data = make_record_data(_config(built))
    iterator = make_data(0, 1)
    take(iterator, 2)
    state = iterator.get_state()
    expected = take(iterator, 2)
    resumed = make_data(0, 1)
    resumed.set_state(state)
    assert_same_batches(expected, take(resumed, 2))
    halves = []
    for index in range(2):       # a 1-process checkpoint restored on 2 processes (global state)
        half = make_data(index, 2)
        half.set_state(state)
        halves.append(next(half))
    assert make_data(0, 2).global_state
    assert_same_batches(expected[:1], [{k: np.concatenate([h[k] for h in halves]) for k in halves[0]}])


def test_damaged_and_old_builds_name_the_folder_and_the_rebuild(built, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(built / "talking_heads", damaged / "talking_heads")
    for path in (damaged / "talking_heads").glob("*/talking_heads-train.array_record-*"):
        path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(InputFileError, match=f"{damaged}: the 'train' array_record files do not read.*build-tfds"):
        make_record_data(_config(damaged))
    old = tmp_path / "old"
    shutil.copytree(built / "talking_heads", old / "talking_heads")
    (old / "talking_heads" / "1.2.0").rename(old / "talking_heads" / "1.1.0")
    with pytest.raises(InputFileError, match=r"found version 1.1.0; this code reads 1.2.0.*build-tfds SOURCE --out"):
        make_record_data(_config(old))
