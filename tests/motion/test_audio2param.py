import jax
import jax.numpy as jnp
import numpy as np

from flashtalker_jax.motion.audio2param import Audio2Param, Audio2ParamDims
from flashtalker_jax.motion.layers import alibi_causal_bias, jit_apply, jit_init, periodic_positional_encoding


def tiny():
    dims = Audio2ParamDims(motion_dim=7, audio_dim=5, template_dim=12, d_model=16, num_heads=2,
                           audio_layers=1, decoder_layers=1, ff_mult=2, period=4)
    return dims, jit_init(lambda rngs: Audio2Param(dims, rngs), jax.random.key(0))


def test_causal_any_length_and_style_dependent():
    dims, model = tiny()
    apply = jit_apply(model)
    rng = np.random.default_rng(0)
    t = 9
    audio = jnp.asarray(rng.normal(size=(1, 2 * t, 5)), jnp.float32)
    template = jnp.asarray(rng.normal(size=(1, 12)), jnp.float32)
    mask = jnp.ones((1, t), bool)
    out = apply(audio, template, mask)
    assert out.shape == (1, t, 7)
    # Frame 4 and earlier must not see audio of frames >= 5 (alignment mask + causal attention).
    later = apply(audio.at[:, 10:].add(3.0), template, mask)
    np.testing.assert_allclose(out[:, :5], later[:, :5], atol=1e-6)
    assert not np.allclose(out[:, 5:], later[:, 5:], atol=1e-4)
    assert not np.allclose(apply(audio, template + 1.0, mask), out, atol=1e-4)


def test_periodic_encoding_and_biased_causal_mask():
    ppe = periodic_positional_encoding(10, 8, period=4)
    np.testing.assert_array_equal(ppe[0], ppe[4])
    np.testing.assert_array_equal(ppe[1], ppe[9])
    bias = alibi_causal_bias(6, 2, period=2)
    # Head 0 slope 2^-4: frames 0-1 back cost 0, 2-3 back cost one slope, future blocked.
    assert bias[0, 5, 5] == 0 and bias[0, 5, 4] == 0
    np.testing.assert_allclose(bias[0, 5, 3], -(2.0 ** -4))
    np.testing.assert_allclose(bias[1, 5, 1], -2 * 2.0 ** -8)
    assert bias[0, 2, 3] <= -1e8
