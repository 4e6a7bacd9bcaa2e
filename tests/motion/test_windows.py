import jax
import ml_collections
import numpy as np
import pytest

from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.a2e_prior import make_window_sampler
from flashtalker_jax.motion.layers import jit_apply
from flashtalker_jax.audio.windowed import rows_of, window_audio
from flashtalker_jax.motion.windows import causal_windows, crossfade_weights, sample_long, sample_windows

W, C, S, P, D = 6, 2, 2, 3, 4


class RecordingWindow:
    """A stand-in window model that records its inputs and returns a known function of
    (window start, audio) so stitching can be checked exactly."""

    def __init__(self):
        self.calls = []

    def __call__(self, key, context, context_mask, audio, frame_mask):
        self.calls.append((context.copy(), bool(context_mask[0]), audio.copy(), frame_mask.copy()))
        frame_audio = audio[0, S * C:].reshape(W, S, D).sum(axis=(1, 2))
        return np.repeat(frame_audio[:, None], P, axis=1)[None] + len(self.calls)


@pytest.mark.parametrize("num_frames", [1, 5, 6, 7, 13, 18])
def test_any_length_is_tiled_by_windows_with_previous_context(num_frames):
    audio = np.arange(S * num_frames * D, dtype=np.float32).reshape(S * num_frames, D) / 100
    fn = RecordingWindow()
    out = sample_long(fn, audio, num_frames, P, W, C, S, jax.random.key(0))
    assert out.shape == (num_frames, P)
    assert len(fn.calls) == -(-num_frames // W)
    expected = audio.reshape(num_frames, S * D).sum(1)
    for k, (context, has_context, win_audio, frame_mask) in enumerate(fn.calls):
        assert has_context == (k > 0)
        start = k * W
        if k > 0:  # the context is exactly what the previous window produced for those frames
            np.testing.assert_array_equal(context[0], out[start - C:start])
        assert frame_mask.sum() == min(W, num_frames - start)
        np.testing.assert_array_equal(win_audio[0], window_audio(audio, start - C, C + W, S))
        np.testing.assert_allclose(out[start:start + W, 0], expected[start:start + W] + k + 1, rtol=1e-6)


def test_window_audio_zero_pads_outside_the_clip():
    audio = np.ones((2 * 4, 3), np.float32)
    rows = window_audio(audio, -2, 8, 2)
    assert rows.shape == (16, 3)
    np.testing.assert_array_equal(rows[:4], 0)
    np.testing.assert_array_equal(rows[4:12], 1)
    np.testing.assert_array_equal(rows[12:], 0)


def test_short_clip_with_the_real_prior_is_one_masked_window(tiny_prior, tiny_dims):
    dims = tiny_dims
    n = 7
    audio = np.random.default_rng(0).normal(size=(2 * n, dims.audio_dim)).astype(np.float32)
    sampler = make_window_sampler(tiny_prior, jax.numpy.asarray(diffusion.cosine_alpha_bars(50)), 3, 2.0)
    identity = np.zeros((1,), np.int32)
    fn = lambda key, *args: sampler(key, *args, identity)
    out = sample_long(fn, audio, n, dims.motion_dim, dims.window, dims.context, 2, jax.random.key(5))
    again = sample_long(fn, audio, n, dims.motion_dim, dims.window, dims.context, 2, jax.random.key(5))
    assert out.shape == (n, dims.motion_dim) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, again)
    direct = sampler(jax.random.fold_in(jax.random.key(5), 0), np.zeros((1, dims.context, dims.motion_dim), np.float32),
                     np.array([False]), window_audio(audio, -dims.context, dims.context + dims.window, 2)[None],
                     (np.arange(dims.window) < n)[None], identity)
    np.testing.assert_array_equal(out, np.asarray(direct[0, :n]))


def test_sample_windows_is_lazy():
    """The first window's frames come out before any later window is computed."""
    fn = RecordingWindow()
    n = 5 * W
    audio = np.ones((S * n, D), np.float32)
    chunks = sample_windows(fn, rows_of(audio, S, n), n, P, W, C, jax.random.key(0))
    first = next(chunks)
    assert first.shape == (W, P) and len(fn.calls) == 1
    assert sum(c.shape[0] for c in chunks) == n - W and len(fn.calls) == 5


class RecordingCausal:
    """A stand-in causal model: frame f of window k is 1000 k + f (f its absolute frame,
    recovered from the audio rows), so every output row names where it came from."""

    def __init__(self, steps):
        self.steps, self.shapes = steps, []

    def __call__(self, audio, frame_mask):
        self.shapes.append((audio.shape, frame_mask.shape))
        frames = audio[0, ::self.steps, 0]
        return (frames + 1000 * (len(self.shapes) - 1))[None, :, None] * np.ones((1, 1, 2), np.float32)


@pytest.mark.parametrize("num_frames", [1, 9, 10, 11, 23, 400])
def test_causal_windows_cover_each_frame_once_with_a_linear_crossfade(num_frames):
    hop, context, overlap, s = 10, 4, 3, 2
    audio = np.repeat(np.arange(num_frames, dtype=np.float32), s)[:, None] * np.ones((1, 3), np.float32)
    fn = RecordingCausal(s)
    chunks = list(causal_windows(fn, rows_of(audio, s, num_frames), num_frames, hop, context, overlap))
    out = np.concatenate(chunks)[:, 0]
    assert out.shape == (num_frames,)
    # Flat memory: one compiled window shape, chunks no longer than a hop, for any length.
    assert set(fn.shapes) == {((1, s * (context + hop), 3), (1, context + hop))}
    assert max(c.shape[0] for c in chunks) <= hop
    frame = np.arange(num_frames)
    window = np.minimum(frame // hop, len(fn.shapes) - 1)
    expected = frame + 1000.0 * window
    w = crossfade_weights(overlap)[:, 0]
    for k in range(1, len(fn.shapes)):  # frames k hop - overlap .. k hop - 1: earlier -> later window
        idx = frame[k * hop - overlap:k * hop]
        expected[idx] = (1 - w) * (idx + 1000 * (k - 1)) + w * (idx + 1000 * k)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_audio2param(period=4, crop=16):
    """(loaded run, Predictor, template) of a random tiny Audio2Param trained on 16-frame crops."""
    from flashtalker_jax.motion.audio2param import Audio2Param, Audio2ParamDims
    from flashtalker_jax.motion.dataset import Normaliser
    from flashtalker_jax.motion.inference import Predictor
    from flashtalker_jax.motion.layers import jit_init
    from flashtalker_jax.motion.tasks import LoadedMotionModel

    dims = Audio2ParamDims(motion_dim=P + 4, audio_dim=D, template_dim=12, d_model=16, num_heads=2,
                           audio_layers=1, decoder_layers=1, ff_mult=2, period=period)
    model = jit_init(lambda rngs: Audio2Param(dims, rngs), jax.random.key(0))
    task = ml_collections.ConfigDict(dict(n_expr=P + 1, model=dict(steps_per_frame=2, window=crop, period=period)))
    rng = np.random.default_rng(1)
    norm = lambda n: Normaliser(rng.normal(size=n).astype(np.float32), rng.uniform(0.5, 2, n).astype(np.float32))
    loaded = LoadedMotionModel("audio2param", model, task, [], norm(dims.motion_dim), norm(D), None)
    return loaded, Predictor(loaded), rng.normal(size=12).astype(np.float32)


def _full_sequence(loaded, audio, template):
    """The reference: one pass of the model over the whole clip."""
    apply = jit_apply(loaded.model)
    n = audio.shape[0] // 2
    feats = loaded.audio_norm.normalise(audio).astype(np.float32)[None]
    out = apply(feats, template[None], np.ones((1, n), bool))
    return loaded.motion_norm.denormalise(np.asarray(out)[0])


def test_windowed_audio2param_equals_the_full_sequence_on_a_short_clip(tiny_audio2param):
    loaded, predictor, template = tiny_audio2param
    assert (predictor.hop, predictor.context, predictor.overlap) == (12, 4, 4)
    n = 11  # shorter than one hop: one window whose masked warm-up rows are invisible
    audio = np.random.default_rng(2).normal(size=(2 * n, D)).astype(np.float32)
    # float32, same maths on a longer padded array: only summation order differs (~1e-6).
    np.testing.assert_allclose(predictor(audio, 0, 0, template), _full_sequence(loaded, audio, template),
                               rtol=1e-5, atol=1e-5)


def test_windowed_audio2param_is_continuous_across_seams(tiny_audio2param):
    """On smooth audio over 5 windows, frame steps at the seams stay within 1.25x the largest
    step inside the windows (measured 1.18x); without the cross-fade the truncated history
    jumps by 2.5x (measured), so the bound tells the two apart."""
    loaded, predictor, template = tiny_audio2param
    n = 60
    t = np.arange(2 * n) / 2
    audio = np.stack([np.sin(2 * np.pi * t / (17 + 3 * i) + i) for i in range(D)], 1).astype(np.float32)
    hop, overlap = predictor.hop, predictor.overlap
    seam = np.zeros(n - 1, bool)  # steps into, through and out of each cross-faded span
    for k in range(1, -(-n // hop)):
        seam[k * hop - overlap - 1:k * hop] = True

    def steps(motion):
        step = np.abs(np.diff(loaded.motion_norm.normalise(motion), axis=0)).max(1)
        return step[seam].max(), step[~seam].max()

    at_seams, inside = steps(predictor(audio, 0, 0, template))
    assert at_seams <= 1.25 * inside
    predictor.overlap = 0
    try:
        at_seams, inside = steps(predictor(audio, 0, 0, template))
    finally:
        predictor.overlap = overlap
    assert at_seams > 2 * inside
