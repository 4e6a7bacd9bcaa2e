"""MediaPipe wrapper, LMD and AUE: hand-computed values and behaviour on real frames.

Distances are float32 sums of a few values; 1e-5 relative tolerance is ample.
"""

import numpy as np
import pytest

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.metrics import au, landmarks, lip, lmd


def test_lmd_hand_computed_and_skips_missing_frames():
    gt = np.zeros((3, 4, 2), np.float32)
    pred = gt + np.array([3.0, 4.0], np.float32)
    pred[1] = np.nan  # no face found in frame 1 of the prediction
    assert float(lmd.lmd(pred, gt)) == pytest.approx(5.0, rel=1e-5)
    assert float(lmd.lmd(pred, gt, ids=[0, 2])) == pytest.approx(5.0, rel=1e-5)


def test_aue_hand_computed():
    gt = np.zeros((2, 52), np.float32)
    pred = gt.copy()
    pred[:, landmarks.BLENDSHAPE_NAMES.index("jawOpen")] = 0.51
    pred[:, landmarks.BLENDSHAPE_NAMES.index("_neutral")] = 1.0  # not an action unit
    errors = au.aue(pred, gt)
    assert float(errors["all"]) == pytest.approx(0.51 / 51, rel=1e-5)
    assert float(errors["lower"]) == pytest.approx(0.51 / len(au.AU_GROUPS["lower"]), rel=1e-5)
    assert float(errors["upper"]) == 0.0


def test_missing_model_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="face landmarker model not found"):
        landmarks.FaceLandmarker(tmp_path / "absent.task")


@pytest.fixture(scope="module")
def may_track(may_frames, landmarker_path):
    return landmarks.track_faces(may_frames, landmarker_path)


def test_detector_output_and_no_face(may_frames, may_track, landmarker_path):
    assert may_track.landmarks.shape == (len(may_frames), 478, 3)
    assert may_track.blendshapes.shape == (len(may_frames), 52)
    assert may_track.found.all()
    nose = may_track.landmarks[0, 1, :2]  # MediaPipe landmark 1: nose tip, mid-frame here
    assert 150 < nose[0] < 360 and 150 < nose[1] < 400
    blank = np.full((64, 64, 3), 128, np.uint8)
    track = landmarks.track_faces([blank], landmarker_path)
    assert not track.found[0] and np.isnan(track.landmarks).all()
    with landmarks.FaceLandmarker(landmarker_path) as landmarker:
        with pytest.raises(ValueError, match="uint8"):
            landmarker.detect(blank.astype(np.float32))


def test_lmd_grows_with_misalignment(may_frames, may_track, landmarker_path, shift_frame):
    frames = may_frames[:8]
    gt = may_track.landmarks[:8]
    values = []
    for shift in (0, 3, 8):
        moved = landmarks.track_faces([shift_frame(f, shift, 0) for f in frames], landmarker_path)
        values.append(float(lmd.lmd_face(moved.landmarks, gt)))
    assert values[0] == 0.0
    assert values[0] < values[1] < values[2], values
    # A translated image moves its landmarks by the translation (up to detector noise).
    assert values[2] == pytest.approx(8.0, abs=0.5)  # measured 8.00 here


def test_lmd_grows_with_jitter(may_frames, may_track, landmarker_path, shift_frame):
    frames = may_frames[:8]
    signs = np.random.default_rng(0).choice([-1, 1], (len(frames), 2))
    values = []
    for amplitude in (2, 6):
        jittered = [shift_frame(f, int(amplitude * sx), int(amplitude * sy))
                    for f, (sx, sy) in zip(frames, signs)]
        moved = landmarks.track_faces(jittered, landmarker_path)
        values.append(float(lmd.lmd_mouth(moved.landmarks, may_track.landmarks[:8])))
    assert values[0] < values[1], values


def test_video_mouth_opening_lag(may_track):
    opening = lip.mouth_opening(may_track.landmarks, landmarks.INNER_LIP_UPPER,
                                landmarks.INNER_LIP_LOWER)  # (24,) pixels
    assert float(np.std(opening)) > 1.0  # the speaker's mouth moves in these frames
    gt, late = opening[2:], opening[:-2]  # the prediction shows each frame 2 frames late
    assert int(lip.peak_lag(late, gt, max_lag=4)) == 2
    assert float(lip.pearson(gt, gt)) == pytest.approx(1.0, abs=1e-6)


def test_aue_zero_for_identical_and_positive_out_of_sync(may_track):
    shapes = may_track.blendshapes
    assert float(au.aue(shapes, shapes)["all"]) == 0.0
    delayed = au.aue(shapes[4:], shapes[:-4])  # the mouth 4 frames (160 ms) out of sync
    assert float(delayed["lower"]) > 0.005
