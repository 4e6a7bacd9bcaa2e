"""Procedural speaking identities: determinism, speech/phoneme alignment, lip shapes."""
from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest

from flashtalker_jax.data.synth import mesh_render, visemes
from flashtalker_jax.data.synth.identity import pose_meshes, synthesize_identity
from flashtalker_jax.data.vhap import read_vhap
from flashtalker_jax.flame import load_flame_model, load_region_masks
from flashtalker_jax.flame.procedural import EXPR_COMPONENTS

OPEN_VOWELS = {"a", "ɑ", "æ", "ʌ", "aɪ", "aʊ", "ɑː", "aː", "ɒ"}
BILABIALS = {"p", "b", "m"}


def file_digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def frames_inside(seq, names, margin=0.0):
    """Frames whose displayed time (centre + visual lead) lies inside a phoneme named in `names`."""
    times = visemes.frame_times(len(seq), seq.fps, 0.02)
    hits = []
    for phoneme, start, end in seq.phonemes:
        if phoneme in names:
            hits += np.nonzero((times >= start + margin) & (times < end - margin))[0].tolist()
    return np.array(sorted(set(hits)), int)


def test_same_seed_gives_the_same_bytes(synth_root, tiny_config, tmp_path):
    """Also across worker counts: the fixture rendered with 2 processes, this with 1."""
    model = load_flame_model(synth_root / "flame")
    again = tmp_path / "identity_000"
    config = copy.deepcopy(tiny_config)
    config.render.workers = 1
    synthesize_identity(again, model, synth_root / "flame", 0, 0, 3.0, config, show_progress=False)
    first = file_digests(synth_root / "identity_000")
    assert first == file_digests(again)
    assert len(first) > 3 * 100  # images, masks and params of every frame were compared


def test_folder_has_the_vhap_layout_and_the_last_sentence_is_the_test_split(synth_root):
    folder = synth_root / "identity_000"
    for name in ("transforms.json", "transforms_train.json", "transforms_val.json", "transforms_test.json",
                 "canonical_flame_param.npz", "audio.wav", "phonemes.json"):
        assert (folder / name).is_file(), name
    assert (synth_root / "flame" / "generic_model.pkl").is_file()
    seq = read_vhap(folder)
    train, test = seq.splits["train"], seq.splits["test"]
    assert len(train) > 0 and len(test) > 0 and len(train) + len(test) == len(seq)
    assert train.max() < test.min()                     # held-out audio comes last
    sentences = json.loads((folder / "identity.json").read_text())["sentence_seconds"]
    assert seq.timesteps[test.min()] / seq.fps > sentences[-2][1]   # after the previous sentence
    with np.load(folder / "flame_param" / "00000.npz") as params:
        assert set(params.files) == {"rotation", "translation", "neck_pose", "jaw_pose", "eyes_pose",
                                     "expr", "shape", "static_offset"}


def test_phonemes_lie_in_voiced_audio_and_pauses_are_silent(synth_root):
    seq = read_vhap(synth_root / "identity_000")
    hop = seq.sample_rate // 100                     # 10 ms energy frames
    energy = np.sqrt(np.mean(seq.audio[: len(seq.audio) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    voiced = energy > 0.02 * energy.max()
    vowels = [(s, e) for p, s, e in seq.phonemes if visemes.split_phoneme(p)
              and visemes.viseme_of(visemes.split_phoneme(p)[0]).name.endswith("vowel")]
    assert len(vowels) > 5
    mid_voiced = [voiced[int((s + e) / 2 * 100)] for s, e in vowels]
    assert np.mean(mid_voiced) >= 0.95
    first_start = seq.phonemes[0][1]
    assert first_start > 0.1 and not voiced[: int(first_start * 100) - 2].any()  # lead silence
    last_end = seq.phonemes[-1][2]
    assert last_end <= len(seq.audio) / seq.sample_rate


def test_lips_close_on_bilabials_and_open_on_open_vowels_in_params(synth_root):
    seq = read_vhap(synth_root / "identity_000")
    closed = frames_inside(seq, BILABIALS)
    opened = frames_inside(seq, OPEN_VOWELS, margin=0.02)
    assert len(closed) >= 2 and len(opened) >= 2
    jaw = seq.flame["jaw_pose"][:, 0]
    lip_open = seq.flame["expr"][:, EXPR_COMPONENTS["mouth_open"]]
    press = seq.flame["expr"][:, EXPR_COMPONENTS["lips_press"]]
    assert jaw[closed].max() < 0.01 and lip_open[closed].max() < 0.05 and press[closed].min() > 0.9
    # Coarticulation keeps short vowels below the full target (jaw 0.32 rad, open 1.0).
    assert np.median(jaw[opened]) > 0.1 and np.median(lip_open[opened]) > 0.3


def mouth_gap_pixels(seq, model, vertices, index, regions):
    """Render the mouth-interior mask (back-facing visible pixels) of posed `vertices`
    inside the lips' screen-space box at 4x resolution, and return the tallest vertical
    run of it: the lip gap in pixels."""
    w2c = np.linalg.inv(seq.c2w[index])
    scale = 4                                            # 256 px: the mouth spans ~20 px
    K = seq.K[index].copy()
    K[:2] *= scale
    frags = mesh_render.rasterize(vertices, np.asarray(model.faces), K, w2c, seq.width * scale,
                                  seq.height * scale)
    lips, _ = mesh_render.project(vertices[regions["lips"]], K, w2c)
    (x0, y0), (x1, y1) = np.floor(lips.min(0)).astype(int), np.ceil(lips.max(0)).astype(int)
    box = frags.mask[y0:y1, x0:x1] & ~frags.front[y0:y1, x0:x1]
    return int(box.sum(0).max())


def test_mouth_region_renders_closed_on_bilabials_and_open_on_open_vowels(synth_root):
    seq = read_vhap(synth_root / "identity_000")
    model = load_flame_model(synth_root / "flame")
    regions = load_region_masks(synth_root / "flame")
    closed = frames_inside(seq, BILABIALS)[:3]
    opened = frames_inside(seq, OPEN_VOWELS, margin=0.02)
    opened = opened[np.argsort(-seq.flame["jaw_pose"][opened, 0])][:3]
    chosen = np.concatenate([closed, opened])
    tracks = {k: v[chosen] for k, v in seq.flame.items()}
    tracks["shape"] = np.broadcast_to(seq.shape, (len(chosen), seq.shape.shape[0]))
    posed = dict(zip(chosen.tolist(), pose_meshes(model, tracks)))
    # Closed lips still show the crease between them (the lip walls face slightly away from
    # the camera): at most 2 px at this scale, the same as the neutral face. Open: >= 8 px.
    assert all(mouth_gap_pixels(seq, model, posed[i], i, regions) <= 2 for i in closed)
    assert all(mouth_gap_pixels(seq, model, posed[i], i, regions) >= 8 for i in opened)


def test_masks_cover_the_head_on_a_plain_background(synth_root):
    seq = read_vhap(synth_root / "identity_000")
    image, mask = seq.load_image(0), seq.load_mask(0)
    assert 0.1 < (mask > 127).mean() < 0.9
    np.testing.assert_array_equal(image[mask == 0], 255)     # white background outside the head
    assert (image[mask == 255] < 250).any(axis=-1).mean() > 0.95


@pytest.mark.parametrize("phoneme,expected", [("aɪ", ["a", "ɪ"]), ("ˈəʊ", ["ə", "ʊ"]), ("tʃ", ["tʃ"]),
                                              ("iː", ["i"]), ("əl", ["ə", "l"])])
def test_split_phoneme(phoneme, expected):
    assert visemes.split_phoneme(phoneme) == expected


def test_bilabial_between_open_vowels_closes_the_lips_exactly():
    phonemes = [("a", 0.0, 0.2), ("b", 0.2, 0.28), ("a", 0.28, 0.5)]
    tracks = visemes.mouth_tracks(phonemes, 12, 25.0, tau=0.03, ramp=0.03, lead_seconds=0.0)
    times = visemes.frame_times(12, 25.0)
    inside_b = (times >= 0.2) & (times < 0.28)
    assert inside_b.any()
    np.testing.assert_array_equal(tracks["jaw"][inside_b], 0.0)
    np.testing.assert_array_equal(tracks["press"][inside_b], 1.0)
    # Two tau away from the /b/ and from the final pause, /a/ reaches its own target.
    far = (times < 0.12) | ((times > 0.38) & (times < 0.44))
    np.testing.assert_allclose(tracks["jaw"][far], visemes.VISEMES["open_vowel"].jaw, rtol=0.02)
