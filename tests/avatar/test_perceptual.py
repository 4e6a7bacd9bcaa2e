"""The optional perceptual (LPIPS) term of the adaptation loss, with randomly initialised
AlexNet-LPIPS weights written to a temporary safetensors file in the loader's key layout
(the network itself is checked against torch in tests/metrics/test_lpips.py): clear
ConfigErrors without usable weights, the term equals metrics.lpips_distance (1e-6: the
same float32 network evaluated twice), and switching it on changes the loss by exactly
weight * term and changes the parameter gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

from flashtalker_jax.avatar import losses
from flashtalker_jax.avatar.adapt import make_loss_fn, make_task
from flashtalker_jax.config import load_config
from flashtalker_jax.errors import ConfigError
from flashtalker_jax.metrics.lpips import load_lpips, lpips_distance
from lpips_weights import random_alex_lpips

WEIGHT = 0.5


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """AlexNet backbone (`features.<i>.*`, OIHW) and lin layers (`lin<l>.model.1.weight`)."""
    backbone, lin = random_alex_lpips()
    path = tmp_path_factory.mktemp("lpips") / "alex_lpips.safetensors"
    save_file({**backbone, **lin}, str(path))
    return path


def _loss_cfg(**changes):
    cfg = load_config("adapt_flashtalker").task.loss
    cfg.update(changes)
    return cfg


def test_perceptual_without_usable_weights_is_a_config_error(tmp_path):
    assert losses.make_perceptual_loss(_loss_cfg()) is None
    with pytest.raises(ConfigError, match="perceptual_weights=''"):
        losses.make_perceptual_loss(_loss_cfg(perceptual=WEIGHT))
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match="nope.pth"):
        losses.make_perceptual_loss(_loss_cfg(perceptual=WEIGHT, perceptual_weights=str(missing)))
    with pytest.raises(ConfigError, match=">= 0"):
        losses.make_perceptual_loss(_loss_cfg(perceptual=-1.0))


def test_perceptual_term_is_lpips_of_render_and_target(weights_file):
    perceptual = losses.make_perceptual_loss(_loss_cfg(perceptual=WEIGHT, perceptual_weights=str(weights_file)))
    keys = jax.random.split(jax.random.key(0), 2)
    render, target = (jax.random.uniform(k, (2, 64, 64, 3)) for k in keys)
    expected = lpips_distance(load_lpips("alex", weights_file, weights_file), render, target, normalize=True)
    np.testing.assert_allclose(perceptual(render, target), jnp.mean(expected), rtol=1e-6)


def test_perceptual_term_changes_the_adaptation_gradient(tiny_identity, weights_file):
    overrides = ["task.resolution=32", "task.placement.uv_resolution=8", "task.placement.teeth_per_face=1",
                 "task.avatar.feature_dim=8", "task.avatar.heads=2", "task.avatar.expr_tokens=2",
                 "task.avatar.offset_hidden=16", "task.avatar.color_hidden=8", "task.avatar.use_audio=False",
                 "task.render.backend=tiles", f"task.data={tiny_identity}"]
    config = load_config("adapt_flashtalker", overrides)
    task = make_task(config.task)
    model = task.make_model(nnx.Rngs(0))
    batch = {k: jnp.asarray(v) for k, v in next(task.make_data(0, 1)).items()}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    plain_fn = make_loss_fn(config.task)
    config.task.loss.perceptual = WEIGHT
    config.task.loss.perceptual_weights = str(weights_file)
    perceptual_fn = make_loss_fn(config.task)

    @jax.jit
    def both(p):  # one compilation for the two losses
        grads = [jax.value_and_grad(lambda q: fn(nnx.merge(graphdef, q, rest), batch, jax.random.key(0)),
                                    has_aux=True)(p) for fn in (plain_fn, perceptual_fn)]
        return grads

    ((plain, _), plain_grads), ((with_term, metrics), grads) = both(params)
    assert float(metrics["perceptual"]) > 0
    np.testing.assert_allclose(with_term - plain, WEIGHT * metrics["perceptual"], rtol=1e-4)
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), grads, plain_grads))
    assert max(float(d) for d in diff) > 1e-6
