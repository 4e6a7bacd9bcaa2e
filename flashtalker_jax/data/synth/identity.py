"""One procedural speaking identity, end to end, written as a VHAP-format folder.

voice + sentences --espeak--> audio (16 kHz) + phoneme intervals
phonemes --visemes--> mouth tracks; audio envelope + noise --motion--> blinks, brows, pose
tracks + identity shape --FLAME--> posed meshes --mesh_render--> frames and masks

Everything random is drawn from `np.random.default_rng([seed, index])`, and espeak-ng runs
in a fresh child process, so the same (seed, index, config) gives the same bytes.
"""
from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import soundfile
from scipy.signal import resample_poly

from flashtalker_jax.data import vhap
from flashtalker_jax.data.synth import espeak, frames, mesh_render, motion, texture, visemes
from flashtalker_jax.audio import num_video_frames
from flashtalker_jax.flame import (FlameModel, FlameParams, flame_forward, load_region_masks,
                                   load_uv_layout)
from flashtalker_jax.flame.procedural import EXPR_COMPONENTS
from flashtalker_jax.utils.files import atomic_path

# Sentences are drawn for seconds / this many (a low guess of a sentence's length), then
# the shortest prefix reaching the requested duration is kept.
SECONDS_PER_SENTENCE_LOW = 1.5
TEXTURE_FILE = "synth_texture.png"   # the identity's albedo: data/synth/views.py re-renders with it


def builtin_sentences() -> list[str]:
    text = resources.files("flashtalker_jax.data.synth").joinpath("sentences.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclasses.dataclass(frozen=True)
class Speech:
    """Concatenated sentences: audio (S,) float32 at sample_rate, phonemes [(ipa, start, end)],
    sentence intervals [(start, end)] in seconds, texts."""
    audio: np.ndarray
    sample_rate: int
    phonemes: list[tuple[str, float, float]]
    sentences: list[tuple[float, float]]
    texts: list[str]


def choose_voice(rng: np.random.Generator, cfg: ml_collections.ConfigDict) -> espeak.Voice:
    return espeak.Voice(language=cfg.language, variant=str(rng.choice(list(cfg.variants))),
                        rate=int(rng.integers(*cfg.rate_range)), pitch=int(rng.integers(*cfg.pitch_range)))


def shortest_prefix(utterances: list[espeak.Utterance], seconds: float, min_count: int,
                    cfg: ml_collections.ConfigDict) -> list[espeak.Utterance]:
    """The first k >= min_count utterances whose joined length (lead, pauses) reaches `seconds`."""
    total = cfg.lead_seconds
    for k, utt in enumerate(utterances, start=1):
        total += utt.duration + cfg.pause_seconds
        if k >= min_count and total >= seconds:
            return utterances[:k]
    return utterances


def speak(texts: list[str], voice: espeak.Voice, seed: int, cfg: ml_collections.ConfigDict,
          sample_rate: int, seconds: float = 0.0, min_count: int = 1) -> Speech:
    """Synthesise, keep the shortest prefix reaching `seconds`, join with pauses, and
    resample 22050 Hz -> sample_rate."""
    utterances = shortest_prefix(espeak.synthesize(texts, voice, seed), seconds, min_count, cfg)
    texts = [u.text for u in utterances]
    source_rate = utterances[0].sample_rate
    pieces, phonemes, sentences = [np.zeros(int(cfg.lead_seconds * source_rate))], [], []
    cursor = len(pieces[0])
    pause = np.zeros(int(cfg.pause_seconds * source_rate))
    for utt in utterances:
        offset = cursor / source_rate
        phonemes += [(p, offset + a, offset + b) for p, a, b in utt.phonemes]
        sentences.append((offset, offset + utt.duration))
        pieces += [utt.samples.astype(np.float64) / 32768.0, pause]
        cursor += len(utt.samples) + len(pause)
    joined = np.concatenate(pieces)
    g = np.gcd(sample_rate, source_rate)
    audio = resample_poly(joined, sample_rate // g, source_rate // g).astype(np.float32)
    return Speech(audio=np.clip(audio, -1, 1), sample_rate=sample_rate, phonemes=phonemes,
                  sentences=sentences, texts=list(texts))


def pick_sentences(rng: np.random.Generator, seconds: float, min_count: int) -> list[str]:
    pool = builtin_sentences()
    count = max(min_count, int(np.ceil(seconds / SECONDS_PER_SENTENCE_LOW)))
    order = rng.permutation(len(pool))
    return [pool[i] for i in order[np.arange(count) % len(pool)]]


def split_frames(sentences: list[tuple[float, float]], num_frames: int, fps: float,
                 cfg: ml_collections.ConfigDict) -> dict[str, list[int]]:
    """Frames -> sentence (boundaries at the middle of each pause) -> train/val/test;
    the last `test_sentences` sentences are the test split (held-out audio)."""
    bounds = [0.5 * (a[1] + b[0]) for a, b in zip(sentences, sentences[1:])]
    times = (np.arange(num_frames) + 0.5) / fps
    sentence_of = np.searchsorted(np.asarray(bounds), times)
    n = len(sentences)
    test_from = n - cfg.test_sentences
    val_from = test_from - cfg.val_sentences
    indices = np.arange(num_frames)
    return {"train": indices[sentence_of < val_from].tolist(),
            "val": indices[(sentence_of >= val_from) & (sentence_of < test_from)].tolist(),
            "test": indices[sentence_of >= test_from].tolist()}


def flame_tracks(mouth: dict, face: dict, shape: np.ndarray, n_expr: int, components: dict,
                 cfg: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Per-frame FLAME params (T, ...) from mouth channels and face motion."""
    T = mouth["jaw"].shape[0]
    expr = np.zeros((T, n_expr), np.float32)
    scale = cfg.visemes.expression_scale
    for channel, name in (("open", "mouth_open"), ("round", "pucker"), ("spread", "stretch"),
                          ("press", "lips_press")):
        expr[:, components[name]] = scale * mouth[channel]
    expr[:, components["eye_close"]] = face["blink"]
    expr[:, components["brow_raise"]] = np.maximum(face["brow"], 0)
    expr[:, components["brow_lower"]] = np.maximum(-face["brow"], 0)
    jaw = np.zeros((T, 3), np.float32)
    jaw[:, 0] = mouth["jaw"]
    split = cfg.motion.neck_share
    return {"rotation": (1 - split) * face["rotation"], "neck_pose": split * face["rotation"],
            "translation": face["translation"], "jaw_pose": jaw, "eyes_pose": face["eyes_pose"],
            "expr": expr, "shape": np.broadcast_to(shape, (T, shape.shape[0])).astype(np.float32)}


@jax.jit
def _posed_vertices(model: FlameModel, params: FlameParams) -> jax.Array:
    return flame_forward(model, params).vertices


def pose_meshes(model: FlameModel, tracks: dict, chunk: int = 32) -> np.ndarray:
    """FLAME forward in fixed-size chunks (one compile per model) -> vertices (T, V, 3) float64."""
    T = tracks["expr"].shape[0]
    out = []
    for start in range(0, T, chunk):
        part = {k: np.asarray(v[start:start + chunk]) for k, v in tracks.items()}
        n = part["expr"].shape[0]
        padded = {k: np.pad(v, ((0, chunk - n), (0, 0))) for k, v in part.items()}
        params = FlameParams(**{k: jnp.asarray(v) for k, v in padded.items()})
        out.append(np.asarray(_posed_vertices(model, params), np.float64)[:n])
    return np.concatenate(out)


def head_centre(template: np.ndarray) -> np.ndarray:
    """(3,) the template's bounding-box centre: where the camera looks."""
    return 0.5 * (template.min(0) + template.max(0))


def shading(render, faces: np.ndarray, regions: dict) -> mesh_render.Shading:
    """The look of config.render (a ConfigDict or its saved JSON dict) on this mesh."""
    return mesh_render.Shading(
        light_dir=tuple(render["light_dir"]), ambient=render["ambient"], diffuse=render["diffuse"],
        background=tuple(render["background"]), cavity_colour=tuple(render["cavity_colour"]),
        dim_back_faces=np.isin(faces, regions["neck"]).all(1), dim_back_level=render["dim_back_level"])


def camera(template: np.ndarray, cfg: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """Frontal camera looking at the template's bounding-box centre: K (3, 3) and
    camera-to-world (4, 4) in OpenGL axes (camera looks down its -z = world -z)."""
    centre = head_centre(template)
    fl = cfg.focal_over_width * cfg.width
    K = np.array([[fl, 0, cfg.width / 2], [0, fl, cfg.height / 2], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = centre + np.array([0.0, 0.0, cfg.camera_distance])
    return K, c2w


def synthesize_identity(out: Path, model, flame_dir: Path, index: int, seed: int, seconds: float,
                        cfg: ml_collections.ConfigDict, show_progress: bool = True) -> dict:
    """Write one identity folder under `out`; returns a summary dict."""
    rng = np.random.default_rng([seed, index])
    voice = choose_voice(rng, cfg.speech)
    min_count = cfg.split.test_sentences + cfg.split.val_sentences + 1
    texts = pick_sentences(rng, seconds, min_count)
    speech = speak(texts, voice, seed * 1000 + index, cfg.speech, cfg.sample_rate, seconds, min_count)
    num_frames = num_video_frames(len(speech.audio), cfg.sample_rate, cfg.fps)
    needed = int(np.ceil(num_frames * cfg.sample_rate / cfg.fps))
    audio = np.pad(speech.audio, (0, max(0, needed - len(speech.audio))))

    mouth = visemes.mouth_tracks(speech.phonemes, num_frames, cfg.fps, cfg.visemes.tau_seconds,
                                 cfg.visemes.closure_ramp_seconds, cfg.visemes.lead_seconds)
    envelope = motion.speech_envelope(audio, cfg.sample_rate, cfg.fps, num_frames)
    face = motion.face_motion(rng, num_frames, cfg.fps, envelope, cfg.motion)
    n_shape, n_expr = model.n_shape, model.n_expr
    shape = np.zeros(n_shape, np.float32)
    shape[:cfg.identity.num_shape] = np.clip(rng.normal(0, cfg.identity.shape_std, cfg.identity.num_shape), -2, 2)
    tracks = flame_tracks(mouth, face, shape, n_expr, EXPR_COMPONENTS, cfg)
    vertices = pose_meshes(model, tracks)

    template = np.asarray(model.v_template, np.float64)
    rest = template + np.asarray(model.shape_dirs, np.float64) @ shape
    vt, ft = load_uv_layout(flame_dir)
    appearance = texture.sample_appearance(rng, cfg.identity)
    regions = load_region_masks(flame_dir)
    tex = texture.identity_texture(rest, regions, vt, ft, appearance, rng,
                                   cfg.render.texture_size)
    K, c2w = camera(template, cfg.render)
    r = cfg.render
    scene = frames.Scene(
        faces=np.asarray(model.faces), vt=vt, ft=ft, texture=tex, K=K, c2w_opengl=c2w, width=r.width,
        height=r.height, supersample=r.supersample, png_compress_level=r.png_compress_level,
        shading=shading(r, np.asarray(model.faces), regions))
    params = {**tracks, "static_offset": np.zeros((vertices.shape[0], vertices.shape[1], 3), np.float32)}
    records = frames.render_sequence(out, vertices, params, scene, r.workers, show_progress, out.name)
    splits = split_frames(speech.sentences, num_frames, cfg.fps, cfg.split)
    _write_sidecars(out, audio, speech, splits, records, tracks, vertices.shape[1], tex, voice,
                    appearance, cfg)
    return {"identity": out.name, "frames": num_frames, "seconds": num_frames / cfg.fps,
            "voice": voice.name, "sentences": len(speech.texts),
            "split_frames": {k: len(v) for k, v in splits.items()}}


def _write_sidecars(out, audio, speech, splits, records, tracks, n_vertices, tex, voice, appearance, cfg):
    vhap.write_transforms(out, records, splits, cfg.fps)
    with atomic_path(out / vhap.AUDIO_FILE) as tmp:
        soundfile.write(tmp, audio, cfg.sample_rate, subtype="PCM_16", format="WAV")
    phonemes = [{"phoneme": p, "start": round(a, 6), "end": round(b, 6)} for p, a, b in speech.phonemes]
    with atomic_path(out / "phonemes.json") as tmp:
        tmp.write_text(json.dumps(phonemes, ensure_ascii=False, indent=0))
    n_expr = tracks["expr"].shape[1]
    with atomic_path(out / vhap.CANONICAL_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shape=tracks["shape"][0], expr=np.zeros(n_expr, np.float32),
                     static_offset=np.zeros((n_vertices, 3), np.float32))
    vhap.write_png(out / TEXTURE_FILE, frames.to_uint8(tex))
    info = {"voice": dataclasses.asdict(voice), "sentences": speech.texts,
            "sentence_seconds": speech.sentences,
            "appearance": {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(appearance).items()}}
    with atomic_path(out / "identity.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1))
