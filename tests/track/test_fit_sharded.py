"""The fit split over two devices (frames on a 1-D mesh, padded to a multiple of the device
count) computes the single-device loss and reaches the same fit. The two-device run is a
child process with two XLA:CPU host devices. The loss of the same variables agrees to
float32 summation order (1e-5 relative). Trajectories are compared by their final loss
(within 1 %), not elementwise: Adam divides by the gradient's running RMS, so
components whose gradient is ~0 turn summation noise into full-size steps."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_fit import _fit, _truth


def _initial_loss(head, embedding, truth) -> float:
    """Loss of the fit's starting point with the frames placed by _shard_frames."""
    import jax.numpy as jnp

    from flashtalker_jax.config import load_config
    from flashtalker_jax.track import fit as F

    cfg = load_config("track").fit
    rig = F.make_rig(head[1], embedding, 100, 50)
    pts = F.rig_forward(rig, jnp.asarray(truth["shape"]), jnp.asarray(truth["expr"]),
                        F.full_pose({k: jnp.asarray(v) for k, v in truth.items()}), jnp.asarray(truth["translation"]))
    target = np.asarray(F.project(pts, jnp.asarray(truth["log_focal"]), 512, 512, cfg.camera_distance))
    weight = np.ones(target.shape[:2], np.float32)
    start = F.init_vars(target, rig, cfg, 512, 512)
    start, target, weight, _ = F._shard_frames(start, target, weight)
    return float(sum(F.loss_terms(start, rig, target, weight, cfg, 512, 512).values()))


CHILD = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import jax
assert len(jax.devices()) == 2, jax.devices()
from conftest import SHARED_DATA
from flashtalker_jax.flame.procedural import generate_procedural_flame, model_from_generated
from flashtalker_jax.track.canonical import load_canonical_mesh
from flashtalker_jax.track.embedding import build_embedding
from test_fit import _fit, _truth
from test_fit_sharded import _initial_loss
data = generate_procedural_flame(0)
head = (data, model_from_generated(data))
m, st = data["model"], data["static_embedding"]
emb = build_embedding(load_canonical_mesh(SHARED_DATA / "models/face_landmarker.task"), np.asarray(m["v_template"]),
                      np.asarray(m["f"], np.int64), np.asarray(st["lmk_face_idx"]), np.asarray(st["lmk_b_coords"]), data["masks"])
truth = _truth(0, 11)
fitted, losses = _fit(head, emb, truth, steps=(20, 30))
np.savez({out!r}, initial_loss=_initial_loss(head, emb, truth), face_loss=losses["face"][-1],
         jaw=fitted["jaw_pose"])
"""


def test_two_devices_agree_with_one(head, embedding, tmp_path, shared_data):
    tests = str(Path(__file__).resolve().parent)
    out = tmp_path / "sharded.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(Path(tests).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=tests, out=str(out))], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    truth = _truth(0, 11)
    single, losses = _fit(head, embedding, truth, steps=(20, 30))
    with np.load(out) as sharded:
        assert float(sharded["initial_loss"]) == pytest.approx(_initial_loss(head, embedding, truth), rel=1e-5)
        assert float(sharded["face_loss"]) == pytest.approx(float(losses["face"][-1]), rel=1e-2)
        assert sharded["jaw"].shape == single["jaw_pose"].shape   # padding stripped
        assert np.corrcoef(sharded["jaw"][:, 0], single["jaw_pose"][:, 0])[0, 1] > 0.99
