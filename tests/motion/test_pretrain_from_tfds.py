"""Pretraining the diffusion prior from a built TFDS dataset through grain (motion/records.py):
the same examples as the in-memory CropIterator, a few training steps, exact resume."""
import base64
import json
import shutil

import jax
import numpy as np
import optax
import pytest
import soundfile

from flashtalker_jax.cli.main import main
from flashtalker_jax.config import load_config
from flashtalker_jax.data import vhap
from flashtalker_jax.data.tfds_builder import build
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.motion import records, tasks
from flashtalker_jax.motion.dataset import CropIterator
from flashtalker_jax.train.state import init_state

TINY_OVERRIDES = ["--config.task.model.d_model=16", "--config.task.model.window=12",
        "--config.task.model.context=3", "--config.task.model.decoder_layers=1",
        "--config.task.model.num_heads=2", "--config.task.model.id_dim=4", "--config.task.batch_size=2",
        "--config.task.min_frames=6", "--config.task.model.diffusion_steps=20",
        "--config.task.sample.steps=2", "--config.optim.decay_steps=10"]
TINY = ["--config", "pretrain_a2e.py:tiny", *TINY_OVERRIDES]
FRAMES, SIZE, RATE, FPS = 40, 16, 16000, 25.0
TRAIN = [*range(0, 16), *range(22, FRAMES)]          # two runs; the test frames sit between them


def write_identity(root, seed: int):
    """A small speaking identity: random-walk expressions, a moving jaw, enveloped noise as audio."""
    rng = np.random.default_rng(seed)
    expr = np.cumsum(rng.normal(0, 0.2, (FRAMES, 10)), 0).astype(np.float32)
    jaw = np.zeros((FRAMES, 3), np.float32)
    jaw[:, 0] = 0.1 * np.abs(np.sin(np.arange(FRAMES) / 3 + seed))
    shape = rng.normal(0, 0.5, 20).astype(np.float32)
    K = np.array([[2.0 * SIZE, 0, SIZE / 2], [0, 2.0 * SIZE, SIZE / 2], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[2, 3] = 1.0
    mask = np.full((SIZE, SIZE), 255, np.uint8)
    frames = []
    for t in range(FRAMES):
        flame = {"rotation": np.zeros(3), "translation": np.zeros(3), "neck_pose": np.zeros(3),
                 "jaw_pose": jaw[t], "eyes_pose": np.zeros(6), "expr": expr[t], "shape": shape}
        record = vhap.write_frame(root, t, np.full((SIZE, SIZE, 3), 10 * t % 256, np.uint8), mask, flame)
        record.update(vhap.camera_record(K, c2w, SIZE, SIZE), timestep_index=t, camera_index=0)
        frames.append(record)
    test = [t for t in range(FRAMES) if t not in TRAIN]
    vhap.write_transforms(root, frames, {"train": TRAIN, "test": test}, FPS)
    np.savez(root / "canonical_flame_param.npz", shape=shape)
    per_frame = int(RATE / FPS)
    envelope = np.repeat(rng.uniform(0.02, 0.3, FRAMES), per_frame)
    soundfile.write(root / "audio.wav", (rng.normal(0, 1, FRAMES * per_frame) * envelope).clip(-0.9, 0.9),
                    RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """root/flame (procedural FLAME), root/ids/id{0,1} (identity folders), root/tfds (built)."""
    from flashtalker_jax.flame.procedural import write_procedural_flame

    root = tmp_path_factory.mktemp("tfds_motion")
    write_procedural_flame(root, seed=0)
    for seed in (0, 1):
        write_identity(root / "ids" / f"id{seed}", seed)
    build(root / "ids", root / "tfds")
    return root


def task_config(root, data):
    config = load_config("pretrain_a2e.py:tiny", [*TINY_OVERRIDES, f"--config.task.flame_dir={root / 'flame'}"])
    config.task.dataset = str(data)
    return config.task


def cli_overrides(root, steps: int):
    return [*TINY, f"--config.task.flame_dir={root / 'flame'}", f"--config.train.steps={steps}",
            "--config.train.checkpoint_every=2", "--config.train.async_checkpoint=False"]


def test_grain_windows_equal_the_in_memory_crops(built):
    task = task_config(built, built / "tfds")
    data = records.open_records(task)
    folder_task = task_config(built, built / "ids")
    identities = tasks.load_identities(folder_task)
    assert [i.name for i in data.identities] == [i.name for i in identities]
    assert [i.index for i in data.identities] == [i.index for i in identities]
    motion_norm, audio_norm = tasks.compute_norms(identities)
    crops = CropIterator(tasks.training_sentences(identities, "train"), 2, task.model.window,
                         task.model.context, task.min_frames, 2, 0, motion_norm, audio_norm)
    normalise = records.NormaliseWindow(task.model.context, 2, motion_norm, audio_norm)
    offset = len(TRAIN)                                    # identity 1's first record
    # (sentence k, start in it, record of the window's first frame): identity 1's first run
    # from frame 0 (no context), the same run's last 8 frames (padded window; the audio of
    # the test frame after it counts), its second run at frame 22 + 4 (full context).
    for k, start, first in ((2, 0, offset), (2, 8, offset + 8), (3, 4, offset + 16 + 4)):
        index = int(np.nonzero(data.source.windows.first == first)[0][0])
        ours = normalise.random_map(data.source[index], np.random.default_rng(0))
        theirs = crops.example(k, start)
        assert ours.keys() == theirs.keys()
        for key in theirs:
            assert np.asarray(ours[key]).dtype == np.asarray(theirs[key]).dtype, key
            np.testing.assert_allclose(ours[key], theirs[key], atol=2e-5, err_msg=f"{key} of window {k, start}")
    batch = next(records.make_data_fn(data, task, motion_norm, audio_norm)(0, 1))
    reference = next(crops)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {k: (v.shape, v.dtype) for k, v in reference.items()}


def test_windows_and_bad_input(built, tmp_path):
    windows = records.motion_windows([[0, 1, 2, 3, 5, 6, 7], [0, 1, 2, 3]], min_frames=3, stride=1, identities=2)
    np.testing.assert_array_equal(windows.first, [0, 1, 4, 7, 8])         # not across the gap 3 -> 5
    np.testing.assert_array_equal(windows.run_stop, [4, 4, 7, 11, 11])
    assert len(records.motion_windows([[0, 1, 2, 3]], 3, 1, identities=0).first) == 0
    task = task_config(built, built / "tfds")
    task.min_frames = 30
    with pytest.raises(InputFileError, match="no run of 30 consecutive frames"):
        records.open_records(task)
    (tmp_path / "talking_heads").mkdir()
    task = task_config(built, tmp_path)
    with pytest.raises(InputFileError, match="no prepared TalkingHeads dataset"):
        tasks.build(task)
    task = task_config(built, built / "tfds")
    task.name = "audio2param"
    with pytest.raises(ConfigError, match="identity folders"):
        tasks.build(task)


@pytest.fixture(scope="module")
def three_steps(built):
    """A tiny prior pretrained for 3 steps from the built dataset (checkpoints at steps 2 and 3)."""
    out = built / "run"
    assert main(["pretrain-a2e", "--data", str(built / "tfds"), "--out", str(out), *cli_overrides(built, 3)]) == 0
    return out


@pytest.mark.slow
def test_pretrain_from_a_built_dataset(built, three_steps):
    summary = json.loads((three_steps / "summary.json").read_text())
    assert summary["input"] == "tfds" and summary["steps"] == 3 and summary["identities"] == 2
    losses = [json.loads(line)["loss"] for line in (three_steps / "metrics.jsonl").read_text().splitlines()]
    assert losses and np.isfinite(losses).all()
    loaded = tasks.load_motion_model(three_steps)
    assert loaded.kind == "a2e_prior" and loaded.identities == ["id0", "id1"]
    # The trainer's initial parameters (same seed): training moved them.
    factory = tasks.make_model_factory(loaded.task, json.loads((three_steps / "model.json").read_text())["audio_dim"])
    initial = tasks.params_of(jax.jit(lambda k: init_state(factory, optax.sgd(0.0), k))(jax.random.key(0)))
    trained = np.load(three_steps / "model.npz")
    assert set(initial) == set(trained.files)
    assert max(float(np.abs(trained[k] - initial[k]).max()) for k in initial) > 1e-5


@pytest.mark.slow
def test_resume_continues_the_grain_stream(built, three_steps, tmp_path):
    task = task_config(built, built / "tfds")
    motion = tasks.build(task)
    uninterrupted = motion.task.make_data(0, 1)
    batches = [next(uninterrupted) for _ in range(3)]
    expected = batches[2]
    assert not np.array_equal(batches[0]["audio"], expected["audio"])
    saved = json.loads((three_steps / "checkpoints" / "2" / "data" / "process_0-of-1.json").read_text())
    resumed = motion.task.make_data(0, 1)
    resumed.set_state(base64.b64decode(saved["bytes_b64"]) if "bytes_b64" in saved else saved)
    batch = next(resumed)
    for key in expected:
        np.testing.assert_array_equal(batch[key], expected[key], err_msg=key)

    # The run cut back to its step-2 checkpoint and resumed gives the parameters of the
    # uninterrupted 3 steps (the trainer restores the grain state with the model's).
    cut = tmp_path / "run"
    shutil.copytree(three_steps, cut)
    shutil.rmtree(cut / "checkpoints" / "3")
    (cut / "model.npz").unlink()
    assert main(["pretrain-a2e", "--data", str(built / "tfds"), "--out", str(cut), "--resume",
                 *cli_overrides(built, 3)]) == 0
    assert not (cut / "corrupt_checkpoints").exists()     # step 2 (state + grain) was restored, not skipped
    a, b = np.load(three_steps / "model.npz"), np.load(cut / "model.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
