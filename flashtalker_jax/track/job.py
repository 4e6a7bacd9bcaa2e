"""`flashtalker track`: a video (or an import-video folder) -> a complete VHAP folder.

Stages, each resumable (a killed run redoes only what was not finished):
  import    data/import_video (frames, crop, 16 kHz audio, MediaPipe landmarks); skipped
            when import_report.json exists (it is written last)
  head      OUT/flame: the user's FLAME folder copied, or the procedural head; the
            MediaPipe embedding beside it (given with --embedding, or built)
  masks     fg_masks/ from the selfie segmenter (frames already written are kept)
  fit       track/fit.py over all frames at once, then track/photometric.py; fit.npz holds
            the result and the hash of everything it depends on, reused only when it matches
  export    flame_param/, canonical_flame_param.npz, transforms*.json (written last),
            head_masks/ (person mask above the tracked neck seam), overlay.png, track_report.json
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from flashtalker_jax.data import vhap
from flashtalker_jax.errors import InputFileError
from flashtalker_jax.utils.files import atomic_path

EMBEDDING_FILE = "mediapipe_landmark_embedding.npz"
FIT_FILE = "fit.npz"
REPORT_FILE = "track_report.json"
IMPORT_REPORT = "import_report.json"


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (copy across filesystems) a folder's files into target; files already
    there (an earlier, killed or finished run) are kept."""
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir() or dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def import_stage(source: Path, out: Path, cfg) -> dict:
    from flashtalker_jax.data.import_video import import_video

    if source.is_dir():
        if not (source / IMPORT_REPORT).is_file():
            raise InputFileError(source, f"is a folder without {IMPORT_REPORT}",
                                 "pass a video file or a folder made by `flashtalker data import-video`")
        if source.resolve() != out.resolve():
            for name in ("images", "landmarks"):
                _link_tree(source / name, out / name)
            for name in (vhap.AUDIO_FILE, IMPORT_REPORT):
                if (source / name).is_file():
                    shutil.copy2(source / name, out / name)
    elif not (out / IMPORT_REPORT).is_file():
        if not source.is_file():
            raise InputFileError(source, "video file not found")
        import_video(source, out, cfg.video, require_audio=False)
    return json.loads((out / IMPORT_REPORT).read_text())


def head_stage(out: Path, flame: Path | None, embedding: Path | None, landmarker: Path):
    """(FlameModel, LandmarkEmbedding, region masks, where the embedding came from) of the
    head in OUT/flame: --embedding, else one kept from an earlier run, else the bundled
    calibrated one when the head has the procedural topology, else built."""
    from flashtalker_jax.flame import load_flame_model, load_region_masks
    from flashtalker_jax.flame.loader import find_model_file
    from flashtalker_jax.flame.procedural import write_procedural_flame
    from flashtalker_jax.track.bundled import bundled_embedding
    from flashtalker_jax.track.canonical import load_canonical_mesh
    from flashtalker_jax.track.embedding import build_for_model, load_embedding

    head = out / "flame"
    if flame is not None and not head.exists():
        shutil.copytree(find_model_file(flame).parent, head)
    elif not head.exists():
        write_procedural_flame(out)
    model = load_flame_model(head)
    masks = load_region_masks(head, np.asarray(model.v_template))
    n_faces = int(model.faces.shape[0])
    if embedding is not None:
        emb, source = load_embedding(embedding, n_faces), f"given: {embedding}"
        emb.save(head / EMBEDDING_FILE)
    elif (head / EMBEDDING_FILE).is_file():
        emb, source = load_embedding(head / EMBEDDING_FILE, n_faces), f"kept: {head / EMBEDDING_FILE}"
    else:
        emb, source = bundled_embedding(np.asarray(model.faces)), "bundled: calibrated for the procedural head"
        if emb is None:
            emb = build_for_model(load_canonical_mesh(landmarker), model, masks)
            source = "built from MediaPipe's canonical mesh"
        emb.save(head / EMBEDDING_FILE)
    return model, emb, masks, source


def _fit_key(cfg, obs, emb, init_sha: str = "") -> str:
    digest = hashlib.sha256(json.dumps({"fit": cfg.fit.to_dict(), "flame": cfg.flame.to_dict(), "init": init_sha},
                                       sort_keys=True).encode())
    for array in (obs.landmarks, obs.found, emb.lmk_face_idx, emb.lmk_b_coords):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def fit_stage(out: Path, cfg, model, emb, obs, masks, crop: int) -> tuple[dict, dict, np.ndarray]:
    """(vars, loss curves, held-out mask); reuses fit.npz when its key matches."""
    from flashtalker_jax.track import fit
    from flashtalker_jax.track.observations import landmark_weights

    target = obs.landmarks[:, emb.landmark_indices]
    weight, held_out = landmark_weights(emb, obs.found, cfg.fit)
    init, init_sha = _encoder_init(out, cfg, model, crop, len(obs.found))
    key = _fit_key(cfg, obs, emb, init_sha)
    saved = _saved_fit(out / FIT_FILE, key)
    if saved is not None:
        return saved[0], saved[1], held_out
    rig = fit.make_rig(model, emb, cfg.flame.n_shape, cfg.flame.n_expr)
    weight = weight.astype(np.float32)
    vars_, losses = fit.fit_clip(target, weight, rig, cfg.fit, crop, crop, init=init)
    if cfg.fit.photo_steps > 0:
        vars_, losses["photometric"] = _photometric(out, cfg, model, masks, rig, target, weight, obs, vars_, crop)
    with atomic_path(out / FIT_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, key=key, **{f"vars_{k}": v for k, v in vars_.items()},
                     **{f"loss_{k}": v for k, v in losses.items()})
    return vars_, losses, held_out


def _encoder_init(out: Path, cfg, model, crop: int, n_frames: int) -> tuple[dict | None, str]:
    """(the motion encoder's starting vars, its weights' sha256) with cfg.init_encoder set
    (`track --init encoder RUN`), else (None, "")."""
    if not cfg.init_encoder:
        return None, ""
    from flashtalker_jax.encoder.track_init import encoder_init_vars
    from flashtalker_jax.flame.loader import find_model_file

    images = [out / "images" / f"{vhap.frame_stem(t)}.png" for t in range(n_frames)]
    return encoder_init_vars(cfg.init_encoder, images, find_model_file(out / "flame"), model, cfg, crop)


def _saved_fit(path: Path, key: str):
    """(vars, losses) of a finished fit with this key, else None (also for a damaged file:
    fit.npz is this command's own cache, redone rather than trusted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            if str(saved["key"]) != key:
                return None
            return ({k[5:]: saved[k] for k in saved.files if k.startswith("vars_")},
                    {k[5:]: saved[k] for k in saved.files if k.startswith("loss_")})
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _photometric(out, cfg, model, masks, rig, target, weight, obs, vars_, crop):
    from flashtalker_jax.track import photometric

    size = int(cfg.fit.photo_size)
    names = [f"{vhap.frame_stem(t)}.png" for t in range(len(obs.found))]
    images = photometric.load_frames([out / "images" / n for n in names], size)
    person = photometric.load_frames([out / "fg_masks" / n for n in names], size).astype(np.float32) / 255
    regions = photometric.face_oval_masks(obs.landmarks, obs.found, crop, size) * person
    return photometric.refine(vars_, model, masks["face"], rig, target, weight, images, regions, cfg.fit, crop)


def write_head_masks(out: Path, model, vars_: dict, masks: dict, cfg, size: int, n_frames: int) -> float:
    """head_masks/<stem>.png for every frame (track/head_masks.py); returns the mean share of
    person pixels that are head (a sanity number for the report)."""
    from PIL import Image

    from flashtalker_jax.track.head_masks import head_mask, ring_pixels, upper_neck_ids
    from flashtalker_jax.utils.progress import progress

    def pixels(ids):
        return ring_pixels(model, vars_, np.asarray(ids), cfg.fit, cfg.flame.n_shape, cfg.flame.n_expr, size)

    rings = pixels(masks["boundary"])
    beyond = pixels(upper_neck_ids(np.asarray(model.v_template), np.asarray(masks["neck"])))[..., 1].max(-1)
    shares = []
    for t in progress(range(n_frames), desc="head masks", unit="frame"):
        stem = f"{vhap.frame_stem(t)}.png"
        person = np.asarray(Image.open(out / "fg_masks" / stem))
        mask = head_mask(person, rings[t], float(beyond[t]))
        vhap.write_png(out / vhap.HEAD_MASK_DIR / stem, mask, cfg.video.png_compress_level)
        shares.append(mask.sum() / max(person.sum(), 1))
    return float(np.mean(shares))


def track_clip(source: str | os.PathLike, out: str | os.PathLike, cfg, *, flame=None, embedding=None) -> dict:
    """Track one clip into `out`; returns the report (also OUT/track_report.json)."""
    from flashtalker_jax.track import fit, metrics
    from flashtalker_jax.track.export import overlay_grid, write_vhap
    from flashtalker_jax.track.masks import write_person_masks
    from flashtalker_jax.track.observations import observe, read_landmarks

    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    clock = time.perf_counter()
    imported = import_stage(source, out, cfg)
    seconds["import"] = time.perf_counter() - clock
    clock = time.perf_counter()
    model, emb, region_masks, emb_source = head_stage(out, Path(flame) if flame else None, Path(embedding) if embedding else None,
                               Path(cfg.video.landmarker))
    raw, found = read_landmarks(out)
    obs = observe(raw, found, cfg, source)
    size = int(imported["crop_size"])
    seconds["head"] = time.perf_counter() - clock
    clock = time.perf_counter()
    images = [out / "images" / f"{vhap.frame_stem(t)}.png" for t in range(len(found))]
    write_person_masks(images, out / "fg_masks", cfg.video.segmenter, cfg.video.png_compress_level)
    seconds["masks"] = time.perf_counter() - clock
    clock = time.perf_counter()
    vars_, losses, held_out = fit_stage(out, cfg, model, emb, obs, region_masks, size)
    seconds["fit"] = time.perf_counter() - clock
    clock = time.perf_counter()
    has_audio = (out / vhap.AUDIO_FILE).is_file() and imported.get("audio_seconds", 0) > 0
    extra = {"crop_box_xy_side": imported["crop_box_xy_side"], "source_size": imported["source_size"],
             "source_video": imported.get("video")}
    splits = write_vhap(out, vars_, len(found), size, size, cfg.fit, imported["fps"], obs.untracked,
                        cfg.test_share, has_audio, extra)
    head_share = write_head_masks(out, model, vars_, region_masks, cfg, size, len(found))
    rig = fit.make_rig(model, emb, cfg.flame.n_shape, cfg.flame.n_expr)
    fitted = fit.reprojection(vars_, rig, cfg.fit, size, size)
    detected = obs.landmarks[:, emb.landmark_indices]
    picks = np.linspace(0, len(found) - 1, min(cfg.overlay_frames, len(found))).round().astype(int).tolist()
    overlay_grid(out / "overlay.png", images, detected, fitted, picks)
    seconds["export"] = time.perf_counter() - clock
    report = {
        "source": str(source), "out": str(out.resolve()), "frames": len(found), "fps": imported["fps"],
        "crop_size": size, "crop_box_xy_side": imported["crop_box_xy_side"], "source_size": imported["source_size"],
        "embedding": emb_source, "focal_px": float(np.exp(vars_["log_focal"]) * size),
        "frames_without_face": int((~obs.found).sum()), "gaps": obs.gaps,
        "untracked_frames": np.nonzero(obs.untracked)[0].tolist(), "scene_cuts": obs.cuts,
        "audio": has_audio,
        "audio_note": None if has_audio else "no audio: this folder cannot train audio models (adapt-a2e, speak "
                                             "from its audio); tracking and avatar training work",
        "splits": {k: len(v) for k, v in splits.items()}, "head_share_of_person": head_share,
        "final_loss": {k: float(v[-1]) for k, v in losses.items()},
        "seconds": seconds, "frames_per_second": {k: len(found) / max(v, 1e-9) for k, v in seconds.items()},
        **metrics.fit_quality(detected, fitted, obs.found, held_out, emb),
    }
    with atomic_path(out / REPORT_FILE) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return report
