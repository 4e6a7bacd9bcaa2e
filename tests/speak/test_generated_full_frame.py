"""speak --pose generated in a real-footage avatar's full frame: the body-loop frames follow
the generated head pose (composite/real.LoopFollower over schedule.follow_indices), wired
through load_speaker into the streamed speak. The avatar is a tiny synthetic one (flat
body-loop frames whose grey level names the frame, a head that draws nothing): the heavy
loaders are replaced, everything from the motion chunks to the mp4 runs for real."""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import soundfile

from flashtalker_jax import video
from flashtalker_jax.composite import real
from flashtalker_jax.composite.body import BodyLoop
from flashtalker_jax.composite.schedule import follow_indices, pingpong_indices
from flashtalker_jax.pipeline import speaker as speaker_mod
from flashtalker_jax.pipeline.avatar import LoadedAvatar

N_LOOP, SIZE, FPS, LEVEL = 20, 16, 25.0, 12   # frame i of the loop is grey level LEVEL * i
FOCAL, DEPTH = 100.0, 1.0


def recorded_poses() -> dict[str, np.ndarray]:
    """A wandering head: consecutive loop frames ~tens of pixels apart at FOCAL / DEPTH, so
    following is unambiguous against the costs (HOLD/TURN_COST_PX2)."""
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=(N_LOOP, 9)), 0).astype(np.float32)
    return {"rotation": 0.05 * walk[:, :3], "translation": 0.05 * walk[:, 3:6],
            "neck_pose": np.zeros((N_LOOP, 3), np.float32), "eyes_pose": np.zeros((N_LOOP, 6), np.float32)}


def generated_path(n_frames: int) -> np.ndarray:
    """The loop frames the fake generator copies its pose from: forward from 3, back at the
    loop's end (a recorded stretch played as a new clip)."""
    return pingpong_indices(3, n_frames, N_LOOP)


class CopyGenerator:
    """Generated pose = the recorded pose along generated_path, rotations nudged so the
    rendered rotation is visibly the generated one, not the loop frame's."""
    pose_keys = ("rotation", "translation")

    def __init__(self, recorded):
        self.recorded = recorded

    def generate(self, audio, n_frames, fps):
        path = generated_path(n_frames)
        return {"rotation": self.recorded["rotation"][path] + 1e-3,
                "translation": self.recorded["translation"][path] + 1e-5}


def fake_flame():
    """Root joint at the origin (a vertex), neck joint 0.1 above it; the vertices lie 0,
    0.1, 0.2 and 0.3 m from the root (median 0.15)."""
    vertices = np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.3]])
    return types.SimpleNamespace(v_template=vertices, J_regressor=np.eye(4)[:2])


def view() -> dict:
    viewmat = np.eye(4, dtype=np.float32)
    viewmat[2, 3] = DEPTH                           # the origin DEPTH in front of the camera
    K = np.array([[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]], np.float32)
    return {"viewmat": viewmat, "K": K, "width": np.int32(SIZE), "height": np.int32(SIZE)}


def body_loop() -> BodyLoop:
    crops = (LEVEL * np.arange(N_LOOP, dtype=np.uint8))[:, None, None, None] * np.ones((1, SIZE, SIZE, 3), np.uint8)
    return BodyLoop(crops=crops, head_masks=np.zeros((N_LOOP, SIZE, SIZE), bool), sources=None,
                    frame_indices=np.arange(N_LOOP, dtype=np.int64) + 100, box=np.array([0.0, 0.0, SIZE]),
                    source_size=(SIZE, SIZE), fps=FPS)


def render_nothing(batch):
    """A head that covers nothing: the alpha composite leaves the body-loop frame exactly."""
    b = np.asarray(batch["rotation"]).shape[0]
    return np.zeros((b, SIZE, SIZE, 3), np.float32), np.zeros((b, SIZE, SIZE), np.float32), np.zeros(b, np.float32)


@pytest.fixture
def tiny_real_avatar(tmp_path, monkeypatch):
    """load_speaker's loaders replaced by the synthetic avatar above; the motion model by
    one that replays the pose it is given (ping-pong, 7-frame chunks, as motion_from_run)."""
    recorded = recorded_poses()
    track = {**recorded, "timesteps": np.arange(N_LOOP, dtype=np.int64) + 100}
    avatar = LoadedAvatar(render_fn=None, size=SIZE, n_expr=4, audio_dim=0, track=track, view=view(),
                          render_head=render_nothing, avatar_dir=tmp_path, task_cfg={"render_over_frame": True},
                          flame=fake_flame())

    def motion_from_run(run, poses, fps, n_expr, **kwargs):
        def motion_fn(audio, n_frames):
            for start in range(0, n_frames, 7):
                rows = pingpong_indices(start, min(7, n_frames - start), len(poses["rotation"]))
                yield {"expr": np.zeros((len(rows), n_expr), np.float32),
                       "jaw_pose": np.zeros((len(rows), 3), np.float32), **{k: v[rows] for k, v in poses.items()}}
        return motion_fn

    from flashtalker_jax.motion.pose import folder

    monkeypatch.setattr(speaker_mod, "motion_run", lambda avatar_dir, a2e: (Path(a2e), None))
    monkeypatch.setattr(speaker_mod, "load_avatar_renderer", lambda avatar_dir, size=None, backend=None: avatar)
    monkeypatch.setattr(speaker_mod, "load_full_frame", lambda avatar, pose_from, still, size: real.FullFrame(
        render_nothing, real.load_compositor(tmp_path), body_loop()))
    monkeypatch.setattr(speaker_mod, "motion_from_run", motion_from_run)
    monkeypatch.setattr(folder, "load_pose_generator", lambda avatar_dir: CopyGenerator(recorded))
    rate = 16000
    soundfile.write(tmp_path / "in.wav", 0.1 * np.sin(np.arange(int(1.6 * rate)) * 0.05), rate)   # 40 frames
    return {"dir": tmp_path, "recorded": recorded, "wav": tmp_path / "in.wav"}


def decoded_loop_frames(path: Path) -> np.ndarray:
    """The loop frame each written frame shows (flat grey LEVEL * i, H.264 within a few levels)."""
    means = np.array([frame.mean() for frame in video.iter_frames(path)])
    index = np.round(means / LEVEL).astype(np.int64)
    assert np.abs(means - LEVEL * index).max() < LEVEL / 4      # unambiguous
    return index


@pytest.mark.parametrize("pose", ["generated", "replay"])
def test_speak_full_frame_follows_the_generated_pose(tiny_real_avatar, pose):
    """generated: the written frames show the loop frames whose recorded pose the generated
    one copies (ping-pong from frame 3, turn included); the head keeps the generated
    rotation on the chosen frame's translation. replay: the ping-pong from frame 0, as before."""
    d = tiny_real_avatar
    spk = speaker_mod.load_speaker(d["dir"], d["dir"], pose=pose, batch_size=4)
    assert (spk.width, spk.height, spk.compositing) == (SIZE, SIZE, real.ALPHA_OVER)
    out, params = d["dir"] / f"{pose}.mp4", d["dir"] / f"{pose}.npz"
    result = spk.speak(d["wav"], out, save_params=params, show_progress=False)
    assert result.frames == 40
    expected = generated_path(40) if pose == "generated" else pingpong_indices(0, 40, N_LOOP)
    np.testing.assert_array_equal(decoded_loop_frames(out), expected)
    saved = np.load(params)
    np.testing.assert_array_equal(saved["translation"], d["recorded"]["translation"][expected])
    shift = 1e-3 if pose == "generated" else 0.0
    np.testing.assert_allclose(saved["rotation"], d["recorded"]["rotation"][expected] + shift, rtol=0, atol=1e-7)


def test_follower_schedule_is_one_pass_over_the_clip():
    """The chunks carry slices of ONE follow_indices over the whole clip (no seams at chunk
    boundaries), in pixels of pose_pixels' scale."""
    recorded = recorded_poses()
    rng = np.random.default_rng(1)
    poses = {"rotation": 0.05 * np.cumsum(rng.normal(size=(50, 3)), 0),
             "translation": 0.05 * np.cumsum(rng.normal(size=(50, 3)), 0)}
    scale = {"rotation": 30.0, "translation": 100.0, "neck_pose": 10.0}
    follower = real.LoopFollower(recorded, scale)

    def motion_fn(audio, n_frames):
        for start in range(0, n_frames, 7):
            t = min(7, n_frames - start)
            yield {"expr": np.zeros((t, 2)), "rotation": np.zeros((t, 3)), "translation": np.zeros((t, 3))}

    generator = types.SimpleNamespace(generate=lambda audio, n, fps: poses)
    chunks = list(speaker_mod.with_generated_pose(motion_fn, generator, FPS, follower)("clip", 50))
    index = np.concatenate([c["loop_index"] for c in chunks])
    features = lambda p: np.concatenate([np.asarray(p["translation"]) * 100.0, np.asarray(p["rotation"]) * 30.0], 1)
    np.testing.assert_array_equal(index, follow_indices(features(poses), features(recorded),
                                                        hold_cost=real.HOLD_COST_PX2, turn_cost=real.TURN_COST_PX2))
    np.testing.assert_array_equal(np.concatenate([c["translation"] for c in chunks]), recorded["translation"][index])
    np.testing.assert_allclose(np.concatenate([c["rotation"] for c in chunks]), poses["rotation"])


def test_pose_pixels_against_the_pinhole():
    """translation: the pinhole's own pixel shift per metre at the root joint (finite
    difference of u = f x / z, exact: u is linear in x); rotation and neck: that times the
    median vertex distance from the root (0.15 m) and from the neck joint."""
    flame = fake_flame()
    v = view()
    translation = np.array([[0.0, 0.0, 0.2], [0.0, 0.0, 0.4]])       # mean depth DEPTH + 0.3
    scale = real.pose_pixels(flame, v["viewmat"], v["K"], translation)

    def u(x):
        cam = v["viewmat"] @ np.array([x, 0.0, 0.3, 1.0])
        return FOCAL * cam[0] / cam[2]

    per_metre = (u(0.01) - u(0.0)) / 0.01
    assert scale["translation"] == pytest.approx(per_metre, rel=1e-6)
    assert scale["rotation"] == pytest.approx(per_metre * 0.15, rel=1e-6)
    neck = np.median(np.linalg.norm(flame.v_template - flame.v_template[1], axis=1))
    assert scale["neck_pose"] == pytest.approx(per_metre * neck, rel=1e-6)
    behind = v["viewmat"].copy()
    behind[2, 3] = -5.0
    with pytest.raises(ValueError, match="behind the camera"):
        real.pose_pixels(flame, behind, v["K"], translation)


def test_follower_needs_translation():
    follower = real.LoopFollower(recorded_poses(), {"rotation": 1.0, "translation": 1.0})
    with pytest.raises(ValueError, match="translation"):
        follower({"rotation": np.zeros((4, 3))})
