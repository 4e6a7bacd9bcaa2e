"""Per-identity adaptation of a pretrained motion model (`flashtalker adapt-a2e`).

The model's architecture, normalisation and identity table come from the prior run
(--a2e); this file sets only what adaptation changes: a low learning rate with Adam
without weight decay (so frozen parameters get exactly zero updates), the frozen audio
encoder, and early stopping on held-out sentences. Presets: `adapt_a2e.py:tiny` (tests),
`adapt_a2e.py:cpu` (the BENCHMARKS.md recipe, for either model kind).
"""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # The fields of the prior's task (model.json) that adaptation replaces; the same names
    # as in pretrain_a2e.py's task block, so `--config.task.batch_size=N` means one thing.
    c.task = ml_collections.ConfigDict(dict(batch_size=16, min_frames=25, data_seed=1))
    # Audio encoder parameters (by leaf-path prefix) that stay fixed, per model kind.
    c.task.freeze = ml_collections.ConfigDict(dict(
        a2e_prior=("encoder/proj", "encoder/layers"), audio2param=("audio_proj", "audio_layers"),
        talk2me_eg=("audio_encoder",), genfacetalk_audio=("audio_encoder",)))
    c.early_stop = ml_collections.ConfigDict(dict(
        # opening_pearson: eval-a2e's mouth-opening correlation on the val sentences, sampled
        # as at inference (what the targets are stated in); loss: the training loss on fixed
        # held-out windows (cheaper; for the prior a denoising loss at random noise levels,
        # which did not track sampled quality in BENCHMARKS.md's A2E runs).
        criterion="opening_pearson",
        seeds=2,           # sampling seeds averaged per evaluation (opening_pearson, prior only)
        eval_every=50,     # steps between held-out evaluations
        patience=4,        # evaluations without improvement before stopping
        eval_batches=4,    # fixed windows of held-out sentences (fixed noise keys) per evaluation (loss)
        min_delta=0.0,
    ))
    c.optim = common.optim("adam", 5e-5, schedule="constant", end_lr_fraction=1.0, b2=0.99, clip_norm=1.0)
    c.train = common.train(2000, seed=1, checkpoint_every=500, keep_checkpoints=1)
    c.mesh = common.mesh()
    return common.with_preset(c, preset, {"tiny": _tiny, "cpu": _cpu})


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.task.batch_size = 8
    c.optim.lr = 3e-4
    c.train.update(steps=40, log_every=10, checkpoint_every=40)
    c.early_stop.update(eval_every=10, eval_batches=2)


def _cpu(c: ml_collections.ConfigDict) -> None:
    # The CPU benchmark recipe (BENCHMARKS.md, A2E), for either model kind.
    c.optim.lr = 2e-4
    c.train.update(steps=100, checkpoint_every=100)
    c.early_stop.update(eval_every=20, patience=3)
