"""Lip metrics against hand-computed values and a numpy re-statement of CodeTalker's FDD.

Values are small float32 sums; 1e-4 relative tolerance is well above float32 rounding.
"""

import numpy as np
import pytest

from flashtalker_jax.metrics import lip


def _meshes():
    gt = np.zeros((2, 4, 3), np.float32)
    pred = gt.copy()
    pred[0, 0, 0] = 0.003  # lip vertex 0 off by 3 mm in frame 0
    pred[0, 1, 1] = 0.001  # lip vertex 1 off by 1 mm in frame 0
    pred[1, 1, 2] = 0.002  # lip vertex 1 off by 2 mm in frame 1
    pred[1, 3, 0] = 0.010  # non-lip vertex off by 10 mm
    return pred, gt


def test_lve_both_conventions_hand_computed():
    pred, gt = _meshes()
    lips = [0, 1]  # a plain list: id arguments accept lists, tuples and arrays
    assert float(lip.lve_max_sq_mm2(pred, gt, lips)) == pytest.approx((9 + 4) / 2, rel=1e-4)
    assert float(lip.lve_max_l2_mm(pred, gt, lips)) == pytest.approx((3 + 2) / 2, rel=1e-4)


def test_mve_hand_computed():
    pred, gt = _meshes()
    assert float(lip.mve_mm(pred, gt)) == pytest.approx((3 + 1 + 2 + 10) / 8, rel=1e-4)


def test_fdd_matches_codetalker_formula():
    rng = np.random.default_rng(0)
    template = rng.standard_normal((6, 3)).astype(np.float32) * 0.1
    gt = template + 0.004 * rng.standard_normal((10, 6, 3)).astype(np.float32)
    pred = template + 0.001 * rng.standard_normal((10, 6, 3)).astype(np.float32)
    upper = (1, 2, 4)

    def codetalker_dynamics(v):  # CodeTalker test script: std over time of sum of squares
        disp = (v - template)[:, upper] * 1000.0
        return np.mean(np.std(np.sum(np.square(disp), axis=2), axis=0))

    ref = codetalker_dynamics(gt) - codetalker_dynamics(pred)
    assert float(lip.fdd_mm2(pred, gt, template, upper)) == pytest.approx(ref, rel=1e-4)
    assert ref > 0  # the quieter prediction under-animates: positive deviation


def test_mouth_opening_and_error():
    pts = np.zeros((3, 4, 2), np.float32)
    pts[:, 2, 1] = [1.0, 2.0, 3.0]  # lower lip moves down
    pts[:, 3, 1] = [2.0, 2.0, 2.0]
    opening = lip.mouth_opening(pts, [0, 1], [2, 3])
    np.testing.assert_allclose(np.asarray(opening), [1.5, 2.0, 2.5], rtol=1e-6)
    assert float(lip.opening_error(opening, opening + 0.5)) == pytest.approx(0.5)


def test_pearson_and_lag_of_shifted_curve():
    t = np.arange(80, dtype=np.float32)
    gt = np.sin(t * 0.37) + 0.5 * np.sin(t * 0.11)
    delayed = np.roll(gt, 3)  # prediction lags 3 frames behind
    assert float(lip.pearson(gt, gt)) == pytest.approx(1.0, abs=1e-6)
    assert float(lip.pearson(gt, -gt)) == pytest.approx(-1.0, abs=1e-6)
    assert int(lip.peak_lag(delayed, gt, max_lag=6)) == 3
    assert int(lip.peak_lag(gt, delayed, max_lag=6)) == -3
    assert int(lip.peak_lag(gt, gt, max_lag=6)) == 0


def test_bad_lag_is_clear():
    with pytest.raises(ValueError, match="max_lag"):
        lip.cross_correlation(np.zeros(5), np.zeros(5), max_lag=5)
