"""TFDS build (array_record, no TensorFlow) + grain windows: content, sharding, exact resume."""
from __future__ import annotations

import numpy as np
import pytest

import grain.python as grain
from flashtalker_jax.config import load_config
from flashtalker_jax.data.pipeline import make_loader, window_log_mel, window_starts
from flashtalker_jax.data.tfds_builder import build
from flashtalker_jax.errors import InputFileError
from toy import make_toy_identity


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for seed in (0, 1):
        make_toy_identity(root / "src" / f"id{seed}", seed=seed, num_frames=12, test_frames=4)
    build(root / "src", root / "out")
    return root / "out"


@pytest.fixture
def cfg():
    c = load_config("data_synth").pipeline
    c.window, c.stride, c.batch_size = 4, 2, 2
    return c


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_window_starts_stay_inside_identities_and_runs():
    starts = window_starts([[0, 1, 2, 3, 4, 5], [0, 1, 2, 5, 6, 7, 8]], window=3, stride=1)
    np.testing.assert_array_equal(starts, [0, 1, 2, 3, 6 + 0, 6 + 3, 6 + 4])   # not across the gap 2 -> 5


def test_window_log_mel_equals_the_whole_clip_rows():
    from flashtalker_jax.audio import log_mel_features

    audio = np.random.default_rng(0).normal(0, 0.1, 10 * 640).astype(np.float32)
    whole, frames = log_mel_features(audio, 16000, 25.0), audio.reshape(10, 640)
    inside = window_log_mel(frames[3:7].reshape(-1), frames[2], frames[7], 16000, 25.0)
    np.testing.assert_allclose(inside, whole[6:14], atol=1e-4)
    at_start = window_log_mel(frames[:4].reshape(-1), np.zeros(640, np.float32), frames[4], 16000, 25.0)
    np.testing.assert_allclose(at_start, whole[:8], atol=1e-4)


def test_build_records_every_frame_with_metadata(built):
    from flashtalker_jax.data.tfds_builder import TalkingHeads

    builder = TalkingHeads(data_dir=str(built))
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 16, "test": 8}
    meta = builder.info.metadata
    assert meta["identities"] == ["id0", "id1"] and meta["sample_rate"] == 16000
    record = builder.as_data_source(split="train")[9]      # sorted: identity 1, timestep 1
    assert (int(record["identity"]), int(record["timestep"])) == (1, 1)
    # The neighbouring timesteps' audio (0 and 2; the toy audio encodes the timestep).
    np.testing.assert_allclose(record["audio_margins"][:, 0], [0.0 + 0.001, 0.02 + 0.001], atol=1e-6)
    assert record["image"][1, 1, 0] == (1 * 40 + 1) % 256 and record["mask"].shape == (16, 16, 1)
    np.testing.assert_allclose(record["audio"], 0.01 + 0.001, atol=1e-6)


def test_identities_of_other_frame_rates_build_and_motion_windows_refuse_them(tmp_path, cfg):
    """A 25 fps and a 30 fps identity (a synthetic set beside a tracked clip) build, with
    each rate in the metadata, for e2v; windows of audio need one rate: a clear error."""
    import json

    from flashtalker_jax.data.tfds_builder import TalkingHeads
    from flashtalker_jax.errors import InputFileError

    for seed in (0, 1):
        make_toy_identity(tmp_path / "src" / f"id{seed}", seed=seed, num_frames=12, test_frames=4)
    for path in (tmp_path / "src" / "id1").glob("transforms*.json"):
        meta = json.loads(path.read_text())
        if "fps" in meta:
            path.write_text(json.dumps({**meta, "fps": 30.0}))
    build(tmp_path / "src", tmp_path / "out")
    meta = TalkingHeads(data_dir=str(tmp_path / "out")).info.metadata
    assert meta["rates"] == [[16000, 25.0], [16000, 30.0]] and meta["fps"] is None
    with pytest.raises(InputFileError, match=r"disagree on \(sample_rate, fps\).*'id1': \(16000, 30.0\)"):
        make_loader(tmp_path / "out", "train", cfg)


def test_windows_are_consistent_frames_of_one_identity_with_their_audio(built, cfg):
    batch = next(iter(make_loader(built, "train", cfg)))
    assert batch["image"].shape == (2, 4, 16, 16, 3) and batch["audio"].shape == (2, 4 * 640)
    assert batch["audio_features"].shape[:2] == (2, 8)
    for b in range(2):
        t, ident = batch["timestep"][b], batch["identity"][b]
        assert (np.diff(t) == 1).all() and (ident == ident[0]).all()
        np.testing.assert_allclose(batch["rotation"][b, :, 0], t)
        np.testing.assert_array_equal(batch["image"][b, :, 5, 5, 0], (ident * 40 + t) % 256)
        expected = np.repeat(t / 100.0 + ident / 1000.0, 640)
        np.testing.assert_allclose(batch["audio"][b], expected, atol=1e-6)


def test_same_seed_same_order_other_seed_other_order(built, cfg):
    first = [b["timestep"][:, 0].tolist() + b["identity"][:, 0].tolist() for b in take(iter(make_loader(built, "train", cfg)), 3)]
    again = [b["timestep"][:, 0].tolist() + b["identity"][:, 0].tolist() for b in take(iter(make_loader(built, "train", cfg)), 3)]
    cfg.seed = 7
    other = [b["timestep"][:, 0].tolist() + b["identity"][:, 0].tolist() for b in take(iter(make_loader(built, "train", cfg)), 3)]
    assert first == again and first != other


def test_worker_processes_give_the_same_batches(built, cfg):
    """worker_count > 0 runs (grain reads its absl flags in a program that never parsed
    them: pipeline.data_loader marks them parsed) and yields the in-process batches."""
    workers = cfg.copy_and_resolve_references()
    workers.worker_count = 1
    want, got = take(iter(make_loader(built, "train", cfg)), 2), take(iter(make_loader(built, "train", workers)), 2)
    for a, b in zip(want, got, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_shards_split_the_windows_disjointly(built, cfg):
    cfg.batch_size = 1
    seen = []
    for index in range(2):
        loader = make_loader(built, "train", cfg, num_epochs=1, shard_options=grain.ShardOptions(index, 2))
        seen.append({(int(b["identity"][0, 0]), int(b["timestep"][0, 0])) for b in loader})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 6                    # 3 windows x 2 identities


def test_iterator_state_checkpoint_resumes_exactly(built, cfg):
    iterator = iter(make_loader(built, "train", cfg))
    take(iterator, 3)
    state = iterator.get_state()
    expected = take(iterator, 4)                        # crosses an epoch boundary (3 per epoch)
    resumed = iter(make_loader(built, "train", cfg))
    resumed.set_state(state)
    for a, b in zip(expected, take(resumed, 4)):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_missing_dataset_and_split_are_reported(built, cfg, tmp_path):
    with pytest.raises(InputFileError, match="no prepared TalkingHeads dataset"):
        make_loader(tmp_path, "train", cfg)
    with pytest.raises(InputFileError, match="no split 'val'"):
        make_loader(built, "val", cfg)


def test_iterator_state_round_trips_through_an_orbax_checkpoint(built, cfg, tmp_path):
    import orbax.checkpoint as ocp

    iterator = iter(make_loader(built, "train", cfg))
    take(iterator, 2)
    with ocp.CheckpointManager(tmp_path / "ckpt", item_handlers={"data": grain.PyGrainCheckpointHandler()}) as manager:
        manager.save(2, args=ocp.args.Composite(data=grain.PyGrainCheckpointSave(iterator)))
        manager.wait_until_finished()
    expected = take(iterator, 3)
    resumed = iter(make_loader(built, "train", cfg))
    with ocp.CheckpointManager(tmp_path / "ckpt", item_handlers={"data": grain.PyGrainCheckpointHandler()}) as manager:
        manager.restore(manager.latest_step(), args=ocp.args.Composite(data=grain.PyGrainCheckpointRestore(resumed)))
    for a, b in zip(expected, take(resumed, 3)):
        np.testing.assert_array_equal(a["timestep"], b["timestep"])
        np.testing.assert_array_equal(a["image"], b["image"])
