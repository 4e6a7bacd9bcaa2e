"""End to end on a tiny scale: synthetic identities -> pretrain -> adapt -> eval report."""
import json

import numpy as np
import pytest

from flashtalker_jax.cli.main import main

TINY = ["--config", "pretrain_a2e.py:tiny", "--config.task.model.d_model=16", "--config.task.model.window=12",
        "--config.task.model.context=3", "--config.task.model.decoder_layers=1",
        "--config.task.model.num_heads=2", "--config.task.model.id_dim=4", "--config.task.batch_size=2",
        "--config.task.min_frames=6", "--config.task.model.diffusion_steps=20",
        "--config.task.sample.steps=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2e")
    assert main(["synth-a2e-data", "--out", str(root / "ds"), "--identities", "2", "--seconds", "4",
                 "--config.split.val_sentences=1"]) == 0
    return root


@pytest.fixture(scope="module")
def prior(dataset):
    """A tiny prior pretrained for 2 steps, shared by the adaptation tests."""
    prior = dataset / "prior"
    assert main(["pretrain-a2e", "--data", str(dataset / "ds"), "--out", str(prior), *TINY,
                 "--config.train.steps=2", "--config.train.checkpoint_every=2"]) == 0
    return prior


@pytest.fixture(scope="module")
def trained_prior(dataset):
    """The tiny prior trained for 200 steps (~5 s more than 2): enough to follow the audio
    (mouth-opening correlation ~0.7 on a held-out sentence, the 2-step prior's ~ -0.3)."""
    trained = dataset / "trained_prior"
    assert main(["pretrain-a2e", "--data", str(dataset / "ds"), "--out", str(trained), *TINY,
                 "--config.train.steps=200", "--config.train.checkpoint_every=200"]) == 0
    return trained


@pytest.mark.slow
def test_pretrain_adapt_eval(dataset, prior, trained_prior):
    ds, adapted = dataset / "ds", dataset / "adapted"
    assert (trained_prior / "model.npz").is_file() and (trained_prior / "norms" / "audio.npz").is_file()
    # min_delta -1e9: every evaluation counts as a gain, so step 1 is kept (best_step 1), and
    # what adaptation wrote is what it trained, not the prior handed back.
    assert main(["adapt-a2e", "--a2e", str(trained_prior), "--data", str(ds / "id001"), "--out", str(adapted),
                 "--config", "adapt_a2e.py:tiny", "--config.task.batch_size=2", "--config.task.min_frames=6",
                 "--config.train.steps=1", "--config.early_stop.eval_every=1", "--config.early_stop.eval_batches=1",
                 "--config.early_stop.min_delta=-1e9", "--config.train.checkpoint_every=1"]) == 0
    summary = json.loads((adapted / "summary.json").read_text())
    assert summary["embedding_rows"] == [2] and [h["step"] for h in summary["history"]] == [0, 1]
    # Default criterion: the sampled mouth-opening correlation on the val sentence.
    assert summary["criterion"] == "opening_pearson" and summary["best_step"] == 1
    assert summary["best_score"] == summary["history"][1]["opening_pearson"]
    # The frozen audio encoder is bit-identical to the prior's; the decoder moved.
    before, after = np.load(trained_prior / "model.npz"), np.load(adapted / "model.npz")
    frozen = [k for k in before.files if k.startswith(("encoder/proj", "encoder/layers"))]
    assert frozen and all(np.array_equal(before[k], after[k]) for k in frozen)
    assert not np.array_equal(before["out/kernel/value"], after["out/kernel/value"])

    # The 2-step prior is the control, evaluated in the same report on the same sentences.
    report_path = dataset / "report.json"
    assert main(["eval-a2e", "--a2e", str(adapted), "--data", str(ds / "id001"), "--report", str(report_path),
                 "--audio", str(ds / "id000" / "audio.wav"), "--baseline", str(prior)]) == 0
    report = json.loads(report_path.read_text())
    pearson = {name: m["opening_pearson"] for name, m in report["identities"]["id001"]["metrics"].items()}
    assert pearson["a2e_prior"] > 0.5 and pearson["a2e_prior"] > pearson["baseline_a2e_prior"] + 0.4, pearson
    real, reference = report["real_audio"][0], report["real_audio_reference"]
    assert (dataset / "report" / "real_audio.png").is_file() and real["frames"] > 0
    assert reference["identity"] == "id001" and 0 < reference["speech_fraction"] < 1
    # The procedural ground truth opens the mouth far wider in speech than in its pauses.
    assert reference["opening_speech_mean_mm"] > reference["opening_silence_mean_mm"] + 2.0
    assert set(report["summary"]) == {"a2e_prior", "baseline_a2e_prior", "gt_shift_2", "static_mean_face"}
    assert report["identities"]["id001"]["seen_in_pretraining"]
    for identity in ("id001",):
        metrics = report["identities"][identity]["metrics"]
        shift = metrics["gt_shift_2"]
        assert shift["opening_peak_lag"] in (2, None) and shift["lve_max_l2_mm"] >= 0
        assert metrics["static_mean_face"]["opening_pearson"] is None
        for key in ("lve_max_l2_mm", "lve_max_sq_mm2", "mve_mm", "fdd_mm2", "opening_error_mm",
                    "opening_pearson", "opening_peak_lag"):
            assert key in metrics["a2e_prior"]
    assert (dataset / "report" / "opening_id001.png").is_file()
    assert "lips" in report["conventions"]["lve_max_l2_mm"]


@pytest.mark.slow
def test_adapt_with_the_heldout_loss_criterion(dataset, prior):
    ds, adapted = dataset / "ds", dataset / "adapted_loss"
    assert main(["adapt-a2e", "--a2e", str(prior), "--data", str(ds / "id000"), "--out", str(adapted),
                 "--config", "adapt_a2e.py:tiny", "--config.task.batch_size=2", "--config.task.min_frames=6",
                 "--config.train.steps=2", "--config.early_stop.eval_every=1", "--config.early_stop.eval_batches=1",
                 "--config.early_stop.criterion=loss", "--config.train.checkpoint_every=2"]) == 0
    summary = json.loads((adapted / "summary.json").read_text())
    losses = [h["loss"] for h in summary["history"]]
    assert summary["criterion"] == "loss" and len(losses) >= 2 and all(np.isfinite(losses))
    assert summary["best_score"] == min(losses[:summary["best_step"] + 1])


@pytest.mark.parametrize("higher_is_better, scores, best_step", [
    (True, [0.5, 0.7, 0.6, 0.65], 1),      # correlation: keep the highest
    (False, [0.5, 0.3, 0.4, 0.35], 1),     # loss: keep the lowest
])
def test_tracker_keeps_the_best_score_and_stops_after_patience(higher_is_better, scores, best_step):
    import ml_collections

    from flashtalker_jax.motion.jobs import EarlyStop, HeldOutTracker

    score_fn = type("Score", (), {"higher_is_better": higher_is_better})()
    early = ml_collections.ConfigDict(dict(criterion="c", eval_every=1, patience=2, min_delta=0.0))
    tracker = HeldOutTracker(score_fn, early, {"w": 0})
    for step, score in enumerate(scores[:-1]):
        tracker.record(step, score, lambda step=step: {"w": step})
    with pytest.raises(EarlyStop):
        tracker.record(len(scores) - 1, scores[-1], lambda: {"w": -1})
    assert tracker.best_step == best_step and tracker.best_params == {"w": best_step}
    assert tracker.best == scores[best_step] and [h["c"] for h in tracker.history] == scores
