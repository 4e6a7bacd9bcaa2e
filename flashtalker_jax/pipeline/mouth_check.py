"""Does the predicted mouth close where speech closes it? (`flashtalker eval-mouth`)

The mouth opening (FLAME inner-lip landmark distance, mm, on the procedural head with zero
shape and pose) that a motion run predicts, through the same streamed windows `speak` uses
(pipeline/motion.motion_from_run), pooled over frame classes:

- phone-timed speech: CHECK_SENTENCES (rich in p/b/m and open vowels, none of them in the
  synthetic-data corpus) spoken by espeak-ng in CHECK_VOICES (voice variants the bundled
  motion prior never heard, configs/motion_prior.py), one wav per voice with PAUSE_SECONDS
  of silence before and between sentences. espeak-ng's phoneme events time every phone;
  a frame (centre time (i + 0.5) / fps) is `bilabial` when the phone under it is p, b or
  m, `open_vowel` when it is an open vowel (visemes.py's open_vowel class), `silence` when
  no phone or a pause mark covers it. Reported: mean opening per class and the ratios
  bilabial / open_vowel and silence / open_vowel (issue 21's targets: <= 0.3 each), for
  the model and for the ground truth the synthetic identities' lips follow (the viseme
  model of configs/data_synth.py on the same phonemes: what "closed" means here).
- real recordings (any files, e.g. ../shared/data/audio/*.wav): no phone timings, so the
  classes are speech and silence by frame RMS (motion/evaluate.speech_frames: within
  35 dB of the clip's 95th-percentile frame); reported: mean opening in speech, its 90th
  percentile (the open frames), mean in silence and silence / speech-p90.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import ml_collections
import numpy as np

CHECK_SENTENCES = (
    "Bob and Pam bought a big map of Spain at the market.",
    "My father parked the car by the barn and walked up the path.",
    "Maybe the baby wants a warm bath before lunch.",
    "Put the pot back on the box, and pass me the apples.",
)
CHECK_VOICES = ("f3", "m3", "klatt2")
PAUSE_SECONDS = 0.5
RATE, PITCH = 150, 60
CLASSES = ("bilabial", "open_vowel", "silence", "other")


def frame_classes(phonemes, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) class names (CLASSES) of the phone under each frame's centre time."""
    from flashtalker_jax.data.synth.visemes import PHONEME_TO_VISEME, split_phoneme

    out = np.full(n_frames, "silence", dtype=object)
    times = (np.arange(n_frames) + 0.5) / fps
    for ipa, start, end in phonemes:
        symbols = [s for s in split_phoneme(ipa) if s in PHONEME_TO_VISEME]
        if not symbols:
            continue   # a pause or stress mark: silence
        kinds = {PHONEME_TO_VISEME[s] for s in symbols}
        name = "bilabial" if "bilabial" in kinds else "open_vowel" if PHONEME_TO_VISEME[symbols[0]] == "open_vowel" \
            else "other"
        out[(times >= start) & (times < end)] = name
    return out


def phone_timed_speech(folder: Path, voice: str, seed: int = 0) -> tuple[Path, list]:
    """CHECK_SENTENCES in espeak-ng voice `voice`, PAUSE_SECONDS of silence before and between
    them: (wav path, phonemes [(ipa, start_s, end_s)] on the wav's clock)."""
    import soundfile

    from flashtalker_jax.data.synth import espeak

    utterances = espeak.synthesize(list(CHECK_SENTENCES), espeak.Voice("en", voice, RATE, PITCH), seed=seed)
    rate = utterances[0].sample_rate
    gap = np.zeros(int(round(PAUSE_SECONDS * rate)), np.int16)
    parts, phonemes, clock = [gap], [], PAUSE_SECONDS
    for u in utterances:
        phonemes += [(ipa, clock + s, clock + e) for ipa, s, e in u.phonemes]
        parts += [u.samples, gap]
        clock += (len(u.samples) + len(gap)) / rate
    wav = folder / f"check_{voice}.wav"
    soundfile.write(wav, np.concatenate(parts), rate, subtype="PCM_16", format="WAV")
    return wav, phonemes


def ground_truth_motion(phonemes, n_frames: int, fps: float, n_expr: int, synth: ml_collections.ConfigDict):
    """[expr | jaw] (n_frames, n_expr + 3) the synthetic identities' lips would make on these
    phonemes (data/synth: viseme tracks -> FLAME expression components + jaw)."""
    from flashtalker_jax.data.synth.identity import flame_tracks
    from flashtalker_jax.data.synth.visemes import mouth_tracks
    from flashtalker_jax.flame.procedural import EXPR_COMPONENTS

    v = synth.visemes
    mouth = mouth_tracks(phonemes, n_frames, fps, v.tau_seconds, v.closure_ramp_seconds, v.lead_seconds)
    zeros = np.zeros((n_frames, 3), np.float32)
    face = {"blink": np.zeros(n_frames), "brow": np.zeros(n_frames), "rotation": zeros, "translation": zeros,
            "eyes_pose": np.zeros((n_frames, 6), np.float32)}
    tracks = flame_tracks(mouth, face, np.zeros(1, np.float32), n_expr, EXPR_COMPONENTS, synth)
    return np.concatenate([tracks["expr"], tracks["jaw_pose"]], axis=1)


def predicted_motion(run: Path, audio: Path, n_frames: int, fps: float, n_expr: int, seed: int) -> np.ndarray:
    """[expr | jaw] (n_frames, n_expr + 3) of a motion run on an audio file, through speak's
    own streamed motion stage (zero head pose)."""
    from flashtalker_jax.pipeline.motion import POSE_KEYS, motion_from_run

    sizes = {"rotation": 3, "neck_pose": 3, "eyes_pose": 6, "translation": 3}
    poses = {k: np.zeros((1, sizes[k]), np.float32) for k in POSE_KEYS}
    chunks = list(motion_from_run(run, poses, fps, n_expr, seed=seed)(audio, n_frames))
    return np.concatenate([np.concatenate([c["expr"], c["jaw_pose"]], axis=1) for c in chunks])


def class_means(opening: np.ndarray, classes: np.ndarray) -> dict:
    means = {f"opening_{c}_mm": float(opening[classes == c].mean()) if (classes == c).any() else None
             for c in CLASSES}
    means["frames"] = {c: int((classes == c).sum()) for c in CLASSES}
    open_ = means["opening_open_vowel_mm"]
    for c in ("bilabial", "silence"):
        value = means[f"opening_{c}_mm"]
        means[f"ratio_{c}_to_open_vowel"] = value / open_ if value is not None and open_ else None
    return means


def mouth_check(runs: dict[str, Path], audio_files=(), voices=CHECK_VOICES, fps: float = 25.0, seed: int = 0,
                flame_seed: int = 0) -> dict:
    """{runs: {name: {phone_timed: {...}, per_voice, real: [...]}}, ground_truth: {...}}
    (module docstring). `runs`: {name: motion run folder}."""
    from flashtalker_jax.audio.features import num_video_frames
    from flashtalker_jax.audio.io import SAMPLE_RATE, load_audio
    from flashtalker_jax.config import load_config
    from flashtalker_jax.flame.procedural import procedural_model
    from flashtalker_jax.motion.evaluate import make_mesh_fn, speech_frames

    flame = procedural_model(flame_seed)
    mesh_fn = make_mesh_fn(flame)
    shape = np.zeros(flame.n_shape, np.float32)
    n_expr = int(flame.n_expr)
    synth = load_config("data_synth")

    def opening(motion):
        return mesh_fn(motion.astype(np.float32), shape)[1]

    report = {"sentences": list(CHECK_SENTENCES), "voices": list(voices), "fps": fps, "seed": seed,
              "head": f"procedural FLAME seed {flame_seed}, zero shape and pose", "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        speech = []
        for voice in voices:
            wav, phonemes = phone_timed_speech(Path(tmp), voice, seed)
            info = __import__("soundfile").info(str(wav))
            n = num_video_frames(info.frames, info.samplerate, fps)
            speech.append((voice, wav, frame_classes(phonemes, n, fps), phonemes, n))
        gt = [opening(ground_truth_motion(p, n, fps, n_expr, synth)) for _, _, _, p, n in speech]
        all_classes = np.concatenate([c for _, _, c, _, _ in speech])
        report["ground_truth"] = {"phone_timed": class_means(np.concatenate(gt), all_classes)}
        for name, run in runs.items():
            per_voice, pooled = {}, []
            for (voice, wav, classes, _, n) in speech:
                o = opening(predicted_motion(Path(run), wav, n, fps, n_expr, seed))
                pooled.append(o)
                per_voice[voice] = class_means(o, classes)
            real = []
            for path in audio_files:
                waveform = load_audio(path, SAMPLE_RATE)
                n = num_video_frames(len(waveform), SAMPLE_RATE, fps)
                o = opening(predicted_motion(Path(run), Path(path), n, fps, n_expr, seed))
                speaking = speech_frames(waveform, SAMPLE_RATE, n, fps)
                p90 = float(np.percentile(o[speaking], 90))
                silence = float(o[~speaking].mean()) if (~speaking).any() else None
                real.append({"file": str(path), "frames": n, "speech_fraction": float(speaking.mean()),
                             "opening_speech_mean_mm": float(o[speaking].mean()), "opening_speech_p90_mm": p90,
                             "opening_silence_mean_mm": silence,
                             "ratio_silence_to_speech_p90": silence / p90 if silence is not None else None})
            report["runs"][name] = {"run": str(run), "phone_timed": class_means(np.concatenate(pooled), all_classes),
                                    "per_voice": per_voice, "real": real}
    return report


TABLE_COLUMNS = ("model", "speech", "bilabial_mm", "open_vowel_mm", "speech_p90_mm", "silence_mm", "bilabial/open",
                 "silence/open", "silence/speech_p90")


def table_rows(report: dict) -> list[dict]:
    """One row per (model, speech) for print_table."""
    rows = []
    sources = [("ground truth (viseme model)", report["ground_truth"])] + list(report["runs"].items())
    for name, entry in sources:
        pt = entry["phone_timed"]
        rows.append({"model": name, "speech": "espeak phone-timed (" + ",".join(report["voices"]) + ")",
                     "bilabial_mm": pt["opening_bilabial_mm"], "open_vowel_mm": pt["opening_open_vowel_mm"],
                     "silence_mm": pt["opening_silence_mm"], "bilabial/open": pt["ratio_bilabial_to_open_vowel"],
                     "silence/open": pt["ratio_silence_to_open_vowel"]})
        for item in entry.get("real", ()):
            rows.append({"model": name, "speech": Path(item["file"]).name,
                         "open_vowel_mm": None, "speech_p90_mm": item["opening_speech_p90_mm"],
                         "silence_mm": item["opening_silence_mean_mm"],
                         "silence/speech_p90": item["ratio_silence_to_speech_p90"]})
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
