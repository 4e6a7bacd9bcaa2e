"""Motion-only procedural identities: the speech, visemes and FLAME tracks of
`flashtalker data synth` (flashtalker_jax/data/synth/identity.py), written as a VHAP folder
WITHOUT rendered images. The audio-to-motion models read only FLAME parameters and audio,
and rendering dozens of identities on CPU costs hours; the random draws up to the FLAME
tracks follow `synthesize_identity` step by step, so the same (seed, index, config) gives
the same speech and motion as the full synthesis.
"""
from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import numpy as np
import soundfile

from flashtalker_jax.data import vhap
from flashtalker_jax.data.synth import identity as synth
from flashtalker_jax.data.synth import motion, visemes
from flashtalker_jax.utils.files import atomic_path


def write_motion_identity(out: Path, model, index: int, seed: int, seconds: float,
                          cfg: ml_collections.ConfigDict) -> dict:
    """Write identity `index` (FLAME params, splits, audio, phonemes) under `out`."""
    from flashtalker_jax.audio import num_video_frames
    from flashtalker_jax.flame.procedural import EXPR_COMPONENTS

    out = Path(out)
    rng = np.random.default_rng([seed, index])
    voice = synth.choose_voice(rng, cfg.speech)
    min_count = cfg.split.test_sentences + cfg.split.val_sentences + 1
    texts = synth.pick_sentences(rng, seconds, min_count)
    speech = synth.speak(texts, voice, seed * 1000 + index, cfg.speech, cfg.sample_rate, seconds, min_count)
    num_frames = num_video_frames(len(speech.audio), cfg.sample_rate, cfg.fps)
    needed = int(np.ceil(num_frames * cfg.sample_rate / cfg.fps))
    audio = np.pad(speech.audio, (0, max(0, needed - len(speech.audio))))
    mouth = visemes.mouth_tracks(speech.phonemes, num_frames, cfg.fps, cfg.visemes.tau_seconds,
                                 cfg.visemes.closure_ramp_seconds, cfg.visemes.lead_seconds)
    face = motion.face_motion(rng, num_frames, cfg.fps,
                              motion.speech_envelope(audio, cfg.sample_rate, cfg.fps, num_frames), cfg.motion)
    shape = np.zeros(model.n_shape, np.float32)
    shape[:cfg.identity.num_shape] = np.clip(rng.normal(0, cfg.identity.shape_std, cfg.identity.num_shape), -2, 2)
    tracks = synth.flame_tracks(mouth, face, shape, model.n_expr, EXPR_COMPONENTS, cfg)
    K, c2w = synth.camera(np.asarray(model.v_template, np.float64), cfg.render)
    records = []
    for t in range(num_frames):
        record = {"flame_param_path": f"flame_param/{t:05d}.npz", "timestep_index": t, "camera_index": 0}
        with atomic_path(out / record["flame_param_path"]) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v[t], np.float32) for k, v in tracks.items()})
        record.update(vhap.camera_record(K, c2w, cfg.render.width, cfg.render.height))
        records.append(record)
    splits = synth.split_frames(speech.sentences, num_frames, cfg.fps, cfg.split)
    vhap.write_transforms(out, records, splits, cfg.fps)
    with atomic_path(out / vhap.AUDIO_FILE) as tmp:
        soundfile.write(tmp, audio, cfg.sample_rate, subtype="PCM_16", format="WAV")
    with atomic_path(out / vhap.CANONICAL_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shape=shape, expr=np.zeros(model.n_expr, np.float32))
    with atomic_path(out / "identity.json") as tmp:
        tmp.write_text(json.dumps({"voice": voice.name, "sentences": speech.texts,
                                   "sentence_seconds": speech.sentences}, indent=1))
    return {"identity": out.name, "frames": num_frames, "voice": voice.name,
            "split_frames": {k: len(v) for k, v in splits.items()}}
