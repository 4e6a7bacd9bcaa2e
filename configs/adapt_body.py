"""`flashtalker adapt-body`: what joins a real-footage avatar (configs/adapt_real.py) to the
person's own frames: the body inpainter (configs/inpainter.py's training, nested here as
the trainer config) and the body loop (composite/body.py).

Presets are configs/inpainter.py's (`cpu`, `quick`), plus the `body` block below.
"""
import ml_collections

from flashtalker_jax.configs import inpainter


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = inpainter.get_config(preset)
    b = config.body = ml_collections.ConfigDict()
    b.train_frames = 240      # training frames rendered for the inpainter, evenly spread over
                              # the train split (poses and clothing folds it must see; ~1 GB
                              # of uint8 arrays at 512 px)
    b.eval_frames = 24        # held-out (test split) frames for the seam error in the report
    b.loop_frames = 250       # body loop: 10 s at 25 fps (the last train frames before the test
                              # split); a 1280x720 loop of 250 frames is ~690 MB decoded
    b.crf = 14                # H.264 quality of the stored loop (visually lossless)
    b.feather_px = 3.0        # soft edge of the paste-back into larger source frames
    b.batch = 4               # avatar frames rendered per call
    if preset == "quick":
        b.update(train_frames=8, eval_frames=4, loop_frames=6, batch=2)
    if preset != "quick":
        # Narrow seams: every painted pixel costs. On news_anchor_71s's held-out frames the
        # head box scored 30.0 / 27.6 / 24.1 / 20.1 dB at inference radius 2 / 4 / 8 / 14 px
        # (BENCHMARKS.md "Real person"), so train on 2-12 px and infer at 4: it covers the
        # render's soft alpha edge (2-3 px at 512); the frame's own head is removed anyway.
        config.task.update(dilation=(2, 12), seam_band=12)
    # Removed-region dilation at inference (px at the crop size), saved in the inpainter
    # folder's config so speak and eval use it: near the low end of the training range.
    low, high = config.task.dilation
    config.task.inference_dilation = min(low + 2, high)
    return config
