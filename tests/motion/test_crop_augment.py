"""Training windows with recording-condition augmentation: applied, reproducible per
(seed, batch), identical across processes, and off where the config says so."""
import ml_collections
import numpy as np
import pytest

from flashtalker_jax.audio.augment import RecordingAugment
from flashtalker_jax.audio.io import default_audio_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.motion.dataset import CropIterator, Normaliser, Sentence
from flashtalker_jax.motion.tasks import make_augment

FRAMES, AUDIO_DIM, MOTION_DIM = 40, 81, 7
SETTINGS = dict(prob=1.0, gain_db=(-12.0, 12.0), snr_db=(10.0, 50.0), noise_kinds=("white", "pink"))


def sentences():
    rng = np.random.default_rng(0)
    out = []
    for k in range(2):
        audio = rng.normal(-6.0, 1.0, (2 * FRAMES, AUDIO_DIM)).astype(np.float32)
        audio[: 2 * FRAMES // 4] = np.log(1e-10)       # a digitally silent pause, as in espeak audio
        out.append(Sentence(f"id{k}", k + 1, rng.normal(size=(FRAMES, MOTION_DIM)).astype(np.float32),
                            audio, np.zeros(3, np.float32), 0))
    return out


def crops(augment, process_index=0, process_count=1, seed=3):
    motion_norm = Normaliser(np.zeros(MOTION_DIM, np.float32), np.ones(MOTION_DIM, np.float32))
    audio_norm = Normaliser(np.full(AUDIO_DIM, -6.0, np.float32), np.full(AUDIO_DIM, 4.0, np.float32))
    return CropIterator(sentences(), 4, 12, 3, 6, 2, seed, motion_norm, audio_norm, process_index,
                        process_count, augment)


@pytest.fixture(scope="module")
def augment():
    return RecordingAugment(ml_collections.ConfigDict(SETTINGS), default_audio_config())


def test_augmented_batches_are_reproducible_and_only_change_the_audio(augment):
    first, again, clean = next(crops(augment)), next(crops(augment)), next(crops(None))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        if key != "audio":       # same windows, motion and masks as without augmentation
            np.testing.assert_array_equal(first[key], clean[key])
    assert not np.array_equal(first["audio"], clean["audio"])
    assert not np.array_equal(first["audio"], next(crops(augment, seed=4))["audio"])


def test_resume_and_process_split_give_the_same_augmented_rows(augment):
    it = crops(augment)
    next(it)
    state = it.get_state()
    second = next(it)
    resumed = crops(augment)
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)["audio"], second["audio"])
    halves = [next(crops(augment, p, 2)) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([h["audio"] for h in halves]), next(crops(augment))["audio"])


def test_make_augment_follows_the_task_config():
    task = ml_collections.ConfigDict(dict(features="log_mel", augment=dict(SETTINGS, prob=0.0)))
    assert make_augment(task) is None
    assert make_augment(ml_collections.ConfigDict(dict(features="log_mel"))) is None  # runs saved before augment
    task.augment.prob = 0.5
    assert isinstance(make_augment(task), RecordingAugment)
    task.features = "wav2vec2"
    with pytest.raises(ConfigError, match="augment"):
        make_augment(task)
