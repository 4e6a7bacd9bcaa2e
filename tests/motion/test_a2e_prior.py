import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from flashtalker_jax.motion import diffusion
from flashtalker_jax.motion.a2e_prior import PriorLossWeights, make_window_sampler, prior_loss
from flashtalker_jax.motion.layers import jit_apply
from motion_helpers import AUDIO_DIM, MOTION_DIM

ORDER = ("x_t", "n", "context", "context_mask", "audio", "frame_mask", "identity", "drop_audio")
SAMPLER_ARGS = ("context", "context_mask", "audio", "frame_mask", "identity")


def make_inputs(dims, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    c, w = dims.context, dims.window
    return dict(
        x_t=jnp.asarray(rng.normal(size=(batch, w, MOTION_DIM)), jnp.float32),
        n=jnp.array([5, 40])[:batch],
        context=jnp.asarray(rng.normal(size=(batch, c, MOTION_DIM)), jnp.float32),
        context_mask=jnp.array([True, False])[:batch],
        audio=jnp.asarray(rng.normal(size=(batch, 2 * (c + w), AUDIO_DIM)), jnp.float32),
        frame_mask=jnp.ones((batch, w), bool).at[1, 8:].set(False)[:batch],
        identity=jnp.array([1, 0])[:batch],
        drop_audio=jnp.zeros((batch,), bool))


def call(model, inputs):
    return jit_apply(model)(*[inputs[k] for k in ORDER])


def test_shapes_and_finite(tiny_prior, tiny_dims):
    out = call(tiny_prior, make_inputs(tiny_dims))
    assert out.shape == (2, tiny_dims.window, MOTION_DIM)
    assert jnp.all(jnp.isfinite(out))


def test_masked_inputs_have_no_influence_and_real_inputs_do(tiny_prior, tiny_dims):
    # Example 1 has no context and frames >= 8 are padding: neither may change its real frames.
    base = make_inputs(tiny_dims)
    apply = jit_apply(tiny_prior)
    run = lambda inputs: apply(*[inputs[k] for k in ORDER])
    a = run(base)
    masked = run({**base, "context": base["context"].at[1].add(5.0),
                  "x_t": base["x_t"].at[1, 8:].add(5.0),
                  "audio": base["audio"].at[1, 2 * (tiny_dims.context + 8):].add(5.0)})
    # float32 attention with masked logits at -1e30: equal up to summation order.
    np.testing.assert_allclose(a[1, :8], masked[1, :8], atol=1e-6)
    np.testing.assert_allclose(a[0], masked[0], atol=1e-6)
    with_context = run({**base, "context": base["context"] + 1.0})
    with_audio = run({**base, "audio": base["audio"] + 1.0})
    assert not np.allclose(a[0], with_context[0], atol=1e-4)
    assert not np.allclose(a[1], with_audio[1], atol=1e-4)


def test_sampling_is_deterministic_with_a_seed_and_cfg_one_is_conditional(tiny_prior, tiny_dims):
    inputs = make_inputs(tiny_dims)
    args = [inputs[k] for k in SAMPLER_ARGS]
    ab = jnp.asarray(diffusion.cosine_alpha_bars(50))
    guided = make_window_sampler(tiny_prior, ab, 4, 2.0)
    a, b, c = (guided(jax.random.key(k), *args) for k in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)

    key = jax.random.key(3)
    apply = jit_apply(tiny_prior)

    def conditional(x, n):
        return apply(x, n, *[inputs[k] for k in ORDER[2:7]], jnp.zeros((2,), bool))

    ref = jax.jit(lambda k: diffusion.ddim_sample(conditional, ab, (2, tiny_dims.window, MOTION_DIM), k, 4))(key)
    out = make_window_sampler(tiny_prior, ab, 4, 1.0)(key, *args)
    # uncond + 1 * (cond - uncond) rounds in float32; errors stay at the 1e-5 level over 4 steps.
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert not np.allclose(make_window_sampler(tiny_prior, ab, 4, 3.0)(key, *args), ref, atol=1e-3)


def test_refreshed_sampler_follows_parameters_updated_in_place(tiny_prior, tiny_dims):
    # adapt-a2e scores every evaluation's parameters with one sampler through nnx.update.
    model = nnx.clone(tiny_prior)
    args = [make_inputs(tiny_dims)[k] for k in SAMPLER_ARGS]
    ab = jnp.asarray(diffusion.cosine_alpha_bars(50))
    sampler, key = make_window_sampler(model, ab, 2, 1.5), jax.random.key(0)
    before = sampler(key, *args)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    moved = jax.tree.map(lambda p: p * 1.1, params)
    nnx.update(model, moved)
    sampler.refresh()
    after = sampler(key, *args)
    fresh = make_window_sampler(nnx.merge(graphdef, moved, rest), ab, 2, 1.5)(key, *args)
    # The same program on the same inputs; 1e-6 allows for a differently fused recompile.
    np.testing.assert_allclose(after, fresh, atol=1e-6)
    assert not np.allclose(before, after, atol=1e-3)


def test_training_loss_decreases_on_a_toy_overfit(tiny_prior, tiny_dims):
    inputs = make_inputs(tiny_dims)
    t = jnp.arange(tiny_dims.window, dtype=jnp.float32)
    motion = jnp.stack([jnp.sin(t / 3 + k) for k in range(MOTION_DIM)], -1)[None].repeat(2, 0)
    batch = dict(motion=motion, **{k: inputs[k] for k in SAMPLER_ARGS})
    ab = jnp.asarray(diffusion.cosine_alpha_bars(50))
    weights = PriorLossWeights()
    graphdef, params, rest = nnx.split(tiny_prior, nnx.Param, ...)
    tx = optax.adam(3e-3)
    key = jax.random.key(0)

    def loss_of(p, k):
        return prior_loss(nnx.merge(graphdef, p, rest), batch, k, ab, weights)[0]

    @jax.jit
    def train(p):
        def step(carry, i):
            p, o = carry
            grads = jax.grad(loss_of)(p, jax.random.fold_in(key, i))
            updates, o = tx.update(grads, o, p)
            return (optax.apply_updates(p, updates), o), None
        return jax.lax.scan(step, (p, tx.init(p)), jnp.arange(60))[0][0]

    eval_keys = jax.random.split(jax.random.key(99), 8)
    evaluate = jax.jit(lambda p: jnp.mean(jax.vmap(lambda k: loss_of(p, k))(eval_keys)))
    before = float(evaluate(params))
    after = float(evaluate(train(params)))
    assert after < 0.5 * before, (before, after)
