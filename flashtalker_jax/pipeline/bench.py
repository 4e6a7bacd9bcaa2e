"""`flashtalker bench speak`: frames per second of the render stage (FLAME parameters ->
frames) and of the whole speak pipeline, per batch size, plus first-frame latency.

Each batch size runs the same clip twice on a loaded speaker; the second run is reported
(compiles happen in the first). The clip is an amplitude-modulated tone (`--audio` for real
speech): speed does not depend on what is said. Latency (first_frame_ms) is measured from
the call to the first rendered batch: reading the audio, the clip's features, the FIRST
motion window only (motion streams window by window, pipeline/stream.py) and one batch.
An avatar trained on real footage is timed as speak runs it: head render + body inpainter
+ paste-back into the source frame (`output` is the frame size).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile

from flashtalker_jax.audio.io import SAMPLE_RATE


def tone_clip(path: Path, seconds: float, rate: int = SAMPLE_RATE) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(path, wave.astype(np.float32), rate)
    return path


def bench_speak(avatar: str, a2e: str, *, seconds: float, size: int, batches: list[int],
                audio: str | None = None, backend: str | None = None, progress=iter) -> list[dict]:
    from flashtalker_jax.pipeline.speaker import load_speaker

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(audio) if audio else tone_clip(Path(tmp) / "clip.wav", seconds)
        for batch in progress(batches):
            speaker = load_speaker(avatar, a2e, batch_size=batch, size=size, backend=backend)
            first = speaker.speak(clip, Path(tmp) / "warmup.mp4", show_progress=False)
            result = speaker.speak(clip, Path(tmp) / "timed.mp4", show_progress=False)
            fps = result.stage_fps()
            rows.append({"batch": batch, "size": speaker.avatar.size, "output": f"{speaker.width}x{speaker.height}",
                         "compositing": speaker.compositing or "none (head only)", "frames": result.frames,
                         "render_fps": fps["render"], "pipeline_fps": fps["total"],
                         "motion_fps": fps["motion"], "encode_fps": fps["encode"],
                         "first_frame_ms": 1000 * result.first_frame_seconds,
                         "first_run_seconds": first.total_seconds})
    return rows
