"""`flashtalker reenact` on a real driving clip (may_5s.mp4, 125 frames with speech): an
untrained tiny avatar of the procedural head driven by the session's quick encoder writes
a video of the driving clip's length with its audio; the still grid is written."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "speak"))


def test_reenact_writes_the_driving_clips_length(encoder_run, tmp_path, shared_data):
    import tiny
    from PIL import Image

    from flashtalker_jax.encoder.reenact import reenact
    from flashtalker_jax.video import count_frames, decode_audio

    run, _ = encoder_run
    ident = tiny.make_identity(tmp_path)
    avatar = tiny.make_avatar(ident, tmp_path / "avatar", audio_dim=0)
    out = tmp_path / "reenact.mp4"
    report = reenact(avatar, run, shared_data / "video" / "may_5s.mp4", out, batch=25,
                     still=tmp_path / "still.png")
    assert report["frames"] == 125 and report["audio"] and report["temporal"]
    assert np.isfinite(report["landmark_jitter_px"]) and report["landmark_jitter_px"] >= 0
    assert count_frames(out) == 125
    audio, rate = decode_audio(out)
    assert abs(len(audio) / rate - 5.0) < 0.1
    still = np.asarray(Image.open(tmp_path / "still.png"))
    assert still.shape == (2 * tiny.SIZE, 6 * tiny.SIZE, 3)


def test_relative_expression_moves_around_the_avatars_rest_face():
    from flashtalker_jax.encoder.reenact import relative_motion

    rng = np.random.default_rng(0)
    motion = {"expr": rng.normal(size=(9, 5)).astype(np.float32), "jaw_pose": rng.normal(size=(9, 3)).astype(np.float32),
              "eyes_pose": np.zeros((9, 6), np.float32)}
    avatar_track = {"expr": rng.normal(size=(4, 3)).astype(np.float32), "jaw_pose": rng.normal(size=(4, 3)).astype(np.float32)}
    out = relative_motion(motion, avatar_track)
    rest = np.concatenate([np.median(avatar_track["expr"], 0), np.zeros(2)])   # the avatar has 3 components
    np.testing.assert_allclose(np.median(out["expr"], 0), rest, atol=1e-6)
    np.testing.assert_allclose(out["expr"] - motion["expr"], np.broadcast_to(rest - np.median(motion["expr"], 0), (9, 5)),
                               atol=1e-6)
    np.testing.assert_allclose(np.median(out["jaw_pose"], 0), np.median(avatar_track["jaw_pose"], 0), atol=1e-6)
    assert out["eyes_pose"] is motion["eyes_pose"]
