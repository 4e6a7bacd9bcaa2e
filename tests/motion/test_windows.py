import jax
import numpy as np
import pytest

from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.a2e_prior import make_window_sampler
from flashtalker_jax.motion.windows import sample_long, window_audio

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
