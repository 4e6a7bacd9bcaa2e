"""`flashtalker demo`: every stage of the project on a procedural identity, no downloads.

Each stage calls the library function behind its command, with its block of the demo
config (configs/demo.py nests every stage's full config). A stage's result is reused only
when it was made with the same settings: out/stage_keys.json holds a hash of each stage's
config (and of the stages it builds on); a stage folder made with other settings (or by a
demo that kept no keys) is moved to out/replaced/ and the stage runs again. Interrupted
training with the same settings resumes from its newest checkpoint. The audio-to-expression
model is the motion prior bundled with the package (pipeline/bundled.py), not trained here;
a demo folder made when the demo trained its own (a2e/, a2e_data/, an "a2e" stage key) has
those moved to out/replaced/. Layout:
  data/       the procedural identity (VHAP layout + flame/), as `flashtalker data synth`
  avatar/     the adapted avatar run (as `flashtalker adapt`; avatar/avatar is the folder)
  speech.wav  the sentence in a voice the identity was not trained on (espeak-ng)
  demo.mp4, demo_params.npz, contact_sheet.png, heldout.png, report.json
report.json (flat): psnr_heldout, ssim_heldout (avatar on held-out frames);
two mouth-opening correlations with the jaw track that the sentence's phoneme timings give
(null for --audio files, which have no phonemes):
  mouth_open_corr_flame_params    the FLAME inner-lip landmark opening of the predicted
                                  parameters (what the motion model asked for; no pixels)
  mouth_open_corr_rendered        the inner-lip opening MediaPipe's face landmarker finds on
                                  the rendered frames of demo.mp4 (what the video shows);
                                  null, with rendered_mouth_note saying why, when no
                                  landmarker model is given (cfg.face_landmarker /
                                  --landmarker) or it finds the face in < half the frames;
                                  rendered_face_found_fraction = frames where it found one
render_fps (render stage of speak, compile included), total_seconds, motion_model and
motion_model_sha256 (the bundled prior's model.npz), and seconds_<stage> for data,
avatar, speak, eval (near 0 for a stage whose result was reused).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import ml_collections
import numpy as np

from flashtalker_jax.errors import FlashtalkerError
from flashtalker_jax.utils.files import atomic_path


STAGE_KEYS = "stage_keys.json"


def stage_key(*settings) -> str:
    """sha256 of the settings (ConfigDicts and plain values) a stage's result depends on."""
    plain = [s.to_dict() if isinstance(s, ml_collections.ConfigDict) else s for s in settings]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def _stage_keys(out: Path) -> dict:
    keys_path = out / STAGE_KEYS
    return json.loads(keys_path.read_text()) if keys_path.is_file() else {}


def _write_stage_keys(out: Path, keys: dict) -> None:
    with atomic_path(out / STAGE_KEYS) as tmp:
        Path(tmp).write_text(json.dumps(keys, indent=1))


def _move_aside(out: Path, folders: tuple[Path, ...]) -> None:
    """Existing `folders` to out/replaced/<folder>-<time> (never deleted)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for folder in folders:
        if folder.exists():
            aside = out / "replaced" / f"{folder.name}-{stamp}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(aside)


def claim_stage(out: Path, name: str, key: str, folders: tuple[Path, ...]) -> None:
    """Keep `folders` when they were made under `key`; otherwise move them to
    out/replaced/<folder>-<time> (never deleted) and record `key` for the new run."""
    keys = _stage_keys(out)
    if keys.get(name) == key:
        return
    _move_aside(out, folders)
    out.mkdir(parents=True, exist_ok=True)
    _write_stage_keys(out, {**keys, name: key})


def data_key(cfg: ml_collections.ConfigDict) -> str:
    return stage_key(cfg.data.seconds, cfg.seed, cfg.data.synth)


def make_identity(out: Path, cfg: ml_collections.ConfigDict) -> Path:
    from flashtalker_jax.data.synth.dataset import synthesize_dataset

    ident = out / "data" / "identity_000"
    claim_stage(out, "data", data_key(cfg), (out / "data",))
    if not (ident / "transforms.json").is_file():
        synthesize_dataset(out / "data", identities=1, seconds=cfg.data.seconds, seed=cfg.seed, cfg=cfg.data.synth)
    return ident


def make_avatar(out: Path, ident: Path, cfg: ml_collections.ConfigDict) -> Path:
    from flashtalker_jax.avatar.jobs import adapt

    run = out / "avatar"
    claim_stage(out, "avatar", stage_key(data_key(cfg), cfg.adapt), (run,))
    if not _current_avatar(run / "avatar"):   # missing, or an older format: resume re-exports
        config = cfg.adapt.copy_and_resolve_references()   # the demo config stays as given
        config.task.data, config.task.flame = str(ident), str(ident.parent / "flame")
        summary = adapt(config, run, resume=True)
        if summary["status"] == "preempted":
            raise FlashtalkerError(f"demo: avatar training preempted at step {summary['steps']}; "
                                   "re-run the demo to resume it")
    return run


def _current_avatar(folder: Path) -> bool:
    from flashtalker_jax.avatar.export import read_meta
    from flashtalker_jax.errors import ModelFileError

    if not (folder / "state.npz").is_file():
        return False
    try:
        read_meta(folder)
    except ModelFileError:
        return False
    return True


def retire_stage(out: Path, name: str, folders: tuple[Path, ...]) -> None:
    """A stage the demo no longer has: its folders move to out/replaced/ and its key goes."""
    keys = _stage_keys(out)
    _move_aside(out, folders)
    if name in keys:
        del keys[name]
        _write_stage_keys(out, keys)


def make_speech(out: Path, ident: Path, cfg: ml_collections.ConfigDict, text: str):
    """(wav path, phonemes, voice name) of `text` in the first configured voice that is not
    the identity's."""
    import soundfile

    from flashtalker_jax.data.synth import espeak

    trained = json.loads((ident / "identity.json").read_text())["voice"]["variant"]
    variant = next(v for v in cfg.speak.voices if v != trained)
    voice = espeak.Voice("en", variant, cfg.speak.rate, cfg.speak.pitch)
    utterance = espeak.synthesize([text], voice, seed=cfg.seed)[0]
    wav = out / "speech.wav"
    with atomic_path(wav) as tmp:
        soundfile.write(tmp, utterance.samples, utterance.sample_rate, format="WAV")
    return wav, utterance.phonemes, voice.name


def jaw_track(phonemes, n_frames: int, fps: float, v: ml_collections.ConfigDict) -> np.ndarray:
    """The viseme model's jaw opening per frame (what the synthetic identities' lips follow);
    `v`: the visemes block of the identity's data_synth config."""
    from flashtalker_jax.data.synth.visemes import mouth_tracks

    return mouth_tracks(phonemes, n_frames, fps, v.tau_seconds, v.closure_ramp_seconds, v.lead_seconds)["jaw"]


MIN_FOUND_FRACTION = 0.5   # below this, a rendered-opening correlation would describe a few frames


def rendered_mouth_opening(video_path: Path, landmarker: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(opening px (T,), NaN where no face was found; found (T,) bool): MediaPipe's inner-lip
    opening (metrics/landmarks INNER_LIP_UPPER/LOWER pairs) on every frame of the video."""
    import jax.numpy as jnp

    from flashtalker_jax.metrics import landmarks, lip
    from flashtalker_jax.video import count_frames, iter_frames

    track = landmarks.track_faces(iter_frames(video_path), landmarker, total=count_frames(video_path),
                                  desc="rendered mouth")
    opening = np.asarray(lip.mouth_opening(jnp.asarray(track.landmarks[..., :2]), landmarks.INNER_LIP_UPPER,
                                           landmarks.INNER_LIP_LOWER))
    return np.where(track.found, opening, np.nan), track.found


def rendered_mouth_report(video_path: Path, landmarker, jaw: np.ndarray | None) -> dict:
    """The report's rendered-opening fields (module docstring)."""
    from flashtalker_jax.metrics.lip import pearson

    if not landmarker:
        return {"mouth_open_corr_rendered": None, "rendered_face_found_fraction": None,
                "rendered_mouth_note": "not measured: no face landmarker model given (--landmarker)"}
    opening, found = rendered_mouth_opening(video_path, landmarker)
    fraction = float(found.mean())
    out = {"mouth_open_corr_rendered": None, "rendered_face_found_fraction": fraction,
           "rendered_mouth_note": None}
    if jaw is None:
        out["rendered_mouth_note"] = "no phoneme timings (--audio file): nothing to correlate with"
    elif fraction < MIN_FOUND_FRACTION:
        out["rendered_mouth_note"] = f"the landmarker found the face in {fraction:.0%} of the frames"
    else:
        n = min(len(opening), len(jaw))
        keep = found[:n]
        corr = float(pearson(opening[:n][keep], jaw[:n][keep]))
        out["mouth_open_corr_rendered"] = corr if np.isfinite(corr) else None
    return out


def contact_sheet(video_path: Path, png: Path, count: int) -> Path:
    """`count` evenly spaced frames of the video side by side."""
    from PIL import Image

    from flashtalker_jax.video import count_frames, iter_frames

    n = count_frames(video_path)
    wanted = set(np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist())
    frames = [f for i, f in enumerate(iter_frames(video_path)) if i in wanted]
    with atomic_path(png) as tmp:
        Image.fromarray(np.concatenate(frames, axis=1)).save(tmp, format="PNG")
    return png


def run_demo(out: str | os.PathLike, cfg: ml_collections.ConfigDict, text: str | None = None,
             audio: str | os.PathLike | None = None) -> dict:
    """Run (or resume) the demo in `out` and return the report written to out/report.json."""
    import jax.numpy as jnp

    from flashtalker_jax.avatar.evaluate import evaluate_avatar
    from flashtalker_jax.avatar.renderer import load_renderer
    from flashtalker_jax.metrics.lip import pearson
    from flashtalker_jax.pipeline.bundled import BUNDLED_NAME, read_bundle
    from flashtalker_jax.pipeline.speaker import load_speaker, motion_run

    start = time.perf_counter()
    seconds = {}
    clock = [start]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        seconds[f"seconds_{stage}"] = now - clock[0]
        clock[0] = now

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ident = make_identity(out, cfg)
    lap("data")
    avatar_run = make_avatar(out, ident, cfg)
    lap("avatar")
    retire_stage(out, "a2e", (out / "a2e", out / "a2e_data"))   # the demo no longer trains one
    a2e_run, _ = motion_run(avatar_run, None)   # the bundled prior; refused on another head
    phonemes, voice = None, None
    if audio is None:
        audio, phonemes, voice = make_speech(out, ident, cfg, text or cfg.speak.text)
    speaker = load_speaker(avatar_run, a2e_run, batch_size=cfg.speak.batch, fps=cfg.fps, seed=cfg.seed)
    result = speaker.speak(audio, out / "demo.mp4", save_params=out / "demo_params.npz")
    corr, jaw = None, None
    if phonemes is not None:
        mouth = np.load(out / "demo_params.npz")["mouth_opening_mm"]
        jaw = jaw_track(phonemes, result.frames, cfg.fps, cfg.data.synth.visemes)
        corr = float(pearson(jnp.asarray(mouth), jnp.asarray(jaw)))
    lap("speak")
    rendered = rendered_mouth_report(out / "demo.mp4", cfg.face_landmarker, jaw)
    renderer, task_cfg = load_renderer(avatar_run / "avatar")
    held_out = evaluate_avatar(renderer.model, task_cfg, ident, png_path=out / "heldout.png")
    contact_sheet(out / "demo.mp4", out / "contact_sheet.png", cfg.sheet_frames)
    lap("eval")
    report = {"psnr_heldout": held_out["psnr"], "ssim_heldout": held_out["ssim"],
              "mouth_open_corr_flame_params": corr if corr is None or np.isfinite(corr) else None,
              **rendered, "motion_model": BUNDLED_NAME,
              "motion_model_sha256": read_bundle(a2e_run)["sha256"]["model.npz"],
              "render_fps": result.stage_fps()["render"], "total_seconds": time.perf_counter() - start,
              "frames": result.frames, "audio_seconds": result.audio_seconds, "voice": voice,
              "identity_voice": json.loads((ident / "identity.json").read_text())["voice"]["variant"],
              "speak_seconds": result.total_seconds, **seconds}
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report
