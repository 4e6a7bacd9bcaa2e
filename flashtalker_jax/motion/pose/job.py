"""`flashtalker adapt-pose`: build an identity's pose database, train its Pose Refiner with
the project's trainer (run folder: checkpoints, metrics.jsonl, resumable), and install both
in AVATAR/pose (folder.py)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import ml_collections

from flashtalker_jax.motion.pose.folder import POSE_DIR, save_pose_folder
from flashtalker_jax.motion.pose.refiner import database_of, make_task_from_db


def adapt_pose(data: str | os.PathLike, avatar: str | os.PathLike | None, config: ml_collections.ConfigDict,
               run_dir: str | os.PathLike, resume: bool = False) -> dict:
    """Train on the tracked folder `data`; write <avatar>/pose (or <run_dir>/pose when avatar
    is None). Returns the report: status, steps, seconds, the first/last logged losses, folder."""
    from flashtalker_jax.train.state import merge_model
    from flashtalker_jax.train.trainer import fit

    start = time.perf_counter()
    config.task.data = str(Path(data).resolve())
    db = database_of(config.task)
    task = make_task_from_db(config.task, db)
    result = fit(task, config, run_dir, resume=resume)
    report = {"status": result.status, "steps": result.step, "database_frames": db.frames,
              "database_windows": int(len(db.window_starts())), "pose_keys": list(db.pose_keys),
              "train_seconds": time.perf_counter() - start, "folder": None}
    if result.status != "preempted":
        model = merge_model(result.graphdef, result.state)
        target = Path(avatar) if avatar is not None else Path(run_dir)
        report["folder"] = str(save_pose_folder(target / POSE_DIR, db, model.refiner, config.task))
    report["losses"] = _loss_ends(Path(run_dir) / "metrics.jsonl")
    return report


def _loss_ends(path: Path) -> dict:
    """{first, last} logged {loss, rec_l1, retrieval_l1} of the run (empty when unreadable)."""
    import json

    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    rows = [r for r in rows if "loss" in r]
    keys = ("step", "loss", "rec_l1", "vel_l1", "retrieval_l1", "g_adv", "d_loss")
    pick = lambda r: {k: r[k] for k in keys if k in r}
    return {"first": pick(rows[0]), "last": pick(rows[-1])} if rows else {}
