"""espeak-ng speech with per-phoneme timings, through PyPI espeakng-loader's bundled library.

The C API is called with ctypes: `espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ...,
espeakINITIALIZE_PHONEME_EVENTS | PHONEME_IPA)`; the synth callback receives audio chunks
(int16, 22050 Hz) and phoneme events with their audio position in ms.

espeak-ng keeps static synthesiser state (pitch phase, noise generators) that neither
`espeak_Terminate` nor its random-seed call resets, so the same text synthesised twice in
one process gives different samples. A fresh process starts from zeroed statics and gives
the same bytes every time: `synthesize` therefore runs each voice in a child process
(`python -m flashtalker_jax.data.synth.espeak`), which also keeps the library's global
state out of the caller.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from flashtalker_jax.errors import FlashtalkerError
from flashtalker_jax.utils.child import child_env, python_command

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAM_RATE = 1
PARAM_PITCH = 3
STRESS_MARKS = "ˈˌ"


@dataclasses.dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language, variant (e.g. "f3"), rate (words/min), pitch (0..100)."""
    language: str
    variant: str
    rate: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One synthesised sentence: int16 samples and phonemes [(ipa, start_s, end_s)]."""
    text: str
    samples: np.ndarray
    sample_rate: int
    phonemes: list[tuple[str, float, float]]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def _phoneme_intervals(events: list[tuple[int, str]], total_ms: float) -> list[tuple[str, float, float]]:
    """Phoneme events (ms, ipa; "" marks a pause) -> [(ipa without stress, start_s, end_s)]."""
    out = []
    for (start, name), (end, _) in zip(events, events[1:] + [(total_ms, "")]):
        name = "".join(ch for ch in name if ch not in STRESS_MARKS)
        if name and end > start:
            out.append((name, start / 1000.0, end / 1000.0))
    return out


def _synthesize_here(texts: Sequence[str], voice: Voice, seed: int) -> list[Utterance]:
    """Run espeak-ng in this process (call only in a fresh process: see module docstring)."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                 INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA | INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise FlashtalkerError(f"espeak-ng failed to initialise (data at {espeakng_loader.get_data_path()})")
    chunks: list[np.ndarray] = []
    events: list[tuple[int, str]] = []

    def on_synth(wav, n, event_ptr):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while event_ptr[i].type != EVENT_LIST_TERMINATED:
            if event_ptr[i].type == EVENT_PHONEME:
                events.append((event_ptr[i].audio_position, event_ptr[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    callback = _CALLBACK(on_synth)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
        raise FlashtalkerError(f"espeak-ng has no voice {voice.name!r}")
    lib.espeak_SetParameter(PARAM_RATE, int(voice.rate), 0)
    lib.espeak_SetParameter(PARAM_PITCH, int(voice.pitch), 0)
    # espeak_Initialize seeds C rand() from the clock; breath/jitter noise draws from it.
    lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
    ctypes.CDLL(None).srand(ctypes.c_uint(seed))
    utterances = []
    for text in texts:
        chunks.clear()
        events.clear()
        data = text.encode("utf-8")
        lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        phonemes = _phoneme_intervals(list(events), 1000.0 * len(samples) / rate)
        utterances.append(Utterance(text, samples.astype(np.int16), rate, phonemes))
    lib.espeak_Terminate()
    return utterances


def synthesize(texts: Sequence[str], voice: Voice, seed: int = 0) -> list[Utterance]:
    """Synthesise sentences with one voice in a fresh child process (bit-reproducible per seed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.npz"
        request = json.dumps({"texts": list(texts), "voice": dataclasses.asdict(voice), "seed": int(seed), "out": str(out)})
        proc = subprocess.run(python_command("-m", __name__), input=request, text=True,
                              capture_output=True, env=child_env())
        if proc.returncode != 0:
            raise FlashtalkerError(f"espeak-ng worker failed for voice {voice.name}: {proc.stderr.strip()[-2000:]}")
        with np.load(out, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return [Utterance(m["text"], data[f"samples_{i}"], m["sample_rate"],
                              [tuple(p) for p in m["phonemes"]]) for i, m in enumerate(meta)]


def _worker() -> None:
    request = json.loads(sys.stdin.read())
    utterances = _synthesize_here(request["texts"], Voice(**request["voice"]), request["seed"])
    meta = [{"text": u.text, "sample_rate": u.sample_rate, "phonemes": u.phonemes} for u in utterances]
    arrays = {f"samples_{i}": u.samples for i, u in enumerate(utterances)}
    np.savez(request["out"], meta=np.array(json.dumps(meta)), **arrays)


if __name__ == "__main__":
    _worker()
