"""pipeline/mouth_check.py (`flashtalker eval-mouth`): frames are classed by the phone
under their centre time, and the ratios are those of the class means."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flashtalker_jax.pipeline.mouth_check import CHECK_SENTENCES, class_means, frame_classes


def test_frames_are_classed_by_the_phone_under_their_centre():
    phonemes = [("_:", 0.0, 0.08), ("b", 0.08, 0.16), ("ˈa", 0.16, 0.32), ("t", 0.32, 0.40), ("m", 0.40, 0.44)]
    classes = frame_classes(phonemes, 13, 25.0)   # centres 0.02, 0.06, ..., 0.50
    assert list(classes) == ["silence", "silence", "bilabial", "bilabial", "open_vowel", "open_vowel",
                             "open_vowel", "open_vowel", "other", "other", "bilabial", "silence", "silence"]


def test_ratios_are_of_the_class_means():
    classes = np.array(["bilabial", "open_vowel", "open_vowel", "silence", "other"], dtype=object)
    means = class_means(np.array([2.0, 10.0, 30.0, 4.0, 7.0]), classes)
    assert means["opening_open_vowel_mm"] == 20.0
    assert means["ratio_bilabial_to_open_vowel"] == pytest.approx(0.1)
    assert means["ratio_silence_to_open_vowel"] == pytest.approx(0.2)
    assert means["frames"] == {"bilabial": 1, "open_vowel": 2, "silence": 1, "other": 1}


def test_check_sentences_are_not_in_the_training_corpus():
    from importlib.resources import files

    corpus = files("flashtalker_jax.data.synth").joinpath("sentences.txt").read_text("utf-8").lower()
    assert len(corpus) > 1000
    assert not [s for s in CHECK_SENTENCES if s.lower().rstrip(".") in corpus]


@pytest.mark.slow
def test_eval_mouth_on_a_motion_run(tiny_runs, tmp_path):
    from flashtalker_jax.cli.main import main

    report = tmp_path / "m.json"
    assert main(["eval-mouth", "--a2e", f"tiny={tiny_runs['a2e']}", "--voices", "f3", "--report", str(report)]) == 0
    saved = json.loads(report.read_text())
    gt = saved["ground_truth"]["phone_timed"]
    # The ground truth the synthetic lips follow closes at bilabials and in silence.
    assert gt["ratio_bilabial_to_open_vowel"] < 0.1 and gt["ratio_silence_to_open_vowel"] < 0.1
    assert min(gt["frames"].values()) > 5
    run = saved["runs"]["tiny"]["phone_timed"]
    assert run["frames"] == gt["frames"] and np.isfinite(run["opening_bilabial_mm"])
