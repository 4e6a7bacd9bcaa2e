"""`flashtalker demo --video CLIP`: the real-person chain on a user's clip, one report.

Stages (each the library call behind its command, with its block of configs/demo_real.py;
a stage is reused only when made with the same settings and the same clip, as in
pipeline/demo.py, and interrupted training resumes):
  track/      `flashtalker track CLIP` (FLAME on the procedural head, head masks, crop box)
  avatar/     `flashtalker adapt --config adapt_real.py` (avatar/avatar is the folder)
  body/       `flashtalker adapt-body` (inpainter run; the avatar folder gets inpainter/, body/)
  speech.wav  the sentence (espeak-ng) unless --audio
  demo.mp4    `flashtalker speak`: the person's full frame (source size), speech muxed
  eval/       `flashtalker eval --setting self` on the held-out frames: grid.png
              (ground truth | ours | error), curves.png
  still.png   the grid's frames side by side: ground truth | ours | |error| x4
  report.json regions (whole frame, head box, neck ring: PSNR/SSIM), the held-out seam
              error of the inpainter, where every pixel came from, timings per stage, fps
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import ml_collections

from flashtalker_jax.errors import FlashtalkerError, InputFileError
from flashtalker_jax.pipeline.demo import claim_stage, stage_key
from flashtalker_jax.utils.files import atomic_path


def clip_key(video: Path) -> list:
    """The clip's identity for stage keys: name, size and modification time."""
    stat = video.stat()
    return [video.name, stat.st_size, int(stat.st_mtime)]


def make_track(out: Path, video: Path, cfg) -> tuple[Path, str]:
    from flashtalker_jax.track.job import track_clip

    folder = out / "track"
    key = stage_key(clip_key(video), cfg.track)
    claim_stage(out, "track", key, (folder,))
    if not (folder / "track_report.json").is_file():
        track_clip(video, folder, cfg.track)
    return folder, key


def make_avatar(out: Path, track: Path, track_key: str, cfg) -> tuple[Path, str]:
    from flashtalker_jax.avatar.jobs import adapt

    run = out / "avatar"
    key = stage_key(track_key, cfg.adapt)
    claim_stage(out, "avatar", key, (run,))
    if not (run / "avatar" / "state.npz").is_file():
        config = cfg.adapt.copy_and_resolve_references()
        config.task.data = str(track)
        summary = adapt(config, run, resume=True)
        if summary["status"] == "preempted":
            raise FlashtalkerError("demo: avatar training preempted; re-run the demo to resume it")
    return run / "avatar", key


def make_body(out: Path, avatar: Path, track: Path, avatar_key: str, cfg) -> dict | None:
    from flashtalker_jax.composite.job import adapt_body
    from flashtalker_jax.composite.real import BODY_DIR, INPAINTER_DIR

    run = out / "body"
    claim_stage(out, "body", stage_key(avatar_key, cfg.body), (run,))
    if (avatar / INPAINTER_DIR).is_dir() and (avatar / BODY_DIR / "body.json").is_file() \
            and (run / "report.json").is_file():
        return json.loads((run / "report.json").read_text())
    report = adapt_body(avatar, track, cfg.body, run, resume=True)
    if report["status"] == "preempted":
        raise FlashtalkerError("demo: inpainter training preempted; re-run the demo to resume it")
    with atomic_path(run / "report.json") as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1, default=str))
    return report


def make_speech(out: Path, cfg, text: str) -> Path:
    import soundfile

    from flashtalker_jax.data.synth import espeak

    voice = espeak.Voice("en", cfg.speak.voice, cfg.speak.rate, cfg.speak.pitch)
    utterance = espeak.synthesize([text], voice, seed=cfg.seed)[0]
    wav = out / "speech.wav"
    with atomic_path(wav) as tmp:
        soundfile.write(tmp, utterance.samples, utterance.sample_rate, format="WAV")
    return wav


def run_demo_real(video: str | os.PathLike, out: str | os.PathLike, cfg: ml_collections.ConfigDict,
                  text: str | None = None, audio: str | os.PathLike | None = None) -> dict:
    """Run (or resume) the real-person demo (module docstring); returns report.json's content."""
    from flashtalker_jax.eval.run import evaluate
    from flashtalker_jax.pipeline.speaker import load_speaker, motion_run

    video, out = Path(video), Path(out)
    if not video.is_file():
        raise InputFileError(video, "video file not found")
    out.mkdir(parents=True, exist_ok=True)
    start = clock = time.perf_counter()
    seconds = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now

    track, track_key = make_track(out, video, cfg)
    lap("track")
    avatar, avatar_key = make_avatar(out, track, track_key, cfg)
    lap("adapt")
    body = make_body(out, avatar, track, avatar_key, cfg)
    lap("adapt_body")
    if audio is None:
        audio = make_speech(out, cfg, text or cfg.speak.text)
    a2e_run, note = motion_run(avatar, None)
    speaker = load_speaker(avatar, a2e_run, batch_size=cfg.speak.batch, fps=cfg.fps, seed=cfg.seed)
    result = speaker.speak(audio, out / "demo.mp4")
    lap("speak")
    evaluation = evaluate(avatar, track, "self", max_frames=cfg.eval_frames, out_dir=out / "eval",
                          grid_frames=cfg.grid_frames)
    still = out / "still.png"
    shutil.copyfile(evaluation["pngs"]["grid"], still)
    lap("eval")
    report = {
        "video": str(video), "out": str(out), "output": str(out / "demo.mp4"),
        "output_size": [speaker.width, speaker.height], "frames": result.frames,
        "audio": str(audio), "audio_seconds": result.audio_seconds, "motion_model": note,
        "compositing": evaluation["compositing"], "heldout_frames": evaluation["frames"],
        "regions": evaluation["regions"]["tracked"], "heldout_seam": body["heldout_seam"],
        "speak_fps": result.stage_fps(), "first_frame_seconds": result.first_frame_seconds,
        "still": str(still), "seconds": {**seconds, "total": time.perf_counter() - start},
    }
    with atomic_path(out / "report.json") as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1, default=str))
    return report
