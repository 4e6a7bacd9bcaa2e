"""The avatar's render (rgb + lip channel, so 4 colour channels) through the pallas
rasterizer (interpret mode on CPU) matches the reference compositor: 1e-5 relative to
the image range [0, 1] (float32, both blend front to back in the same order; the kernel
tests use the same bound)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.avatar.adapt import make_task
from flashtalker_jax.avatar.renderer import AvatarRenderer, RenderSettings, render
from flashtalker_jax.config import load_config
from flashtalker_jax.flame.model import FlameParams


def test_avatar_renders_the_same_with_pallas_and_reference(tiny_identity):
    overrides = ["task.resolution=32", "task.placement.uv_resolution=32", "task.placement.teeth_per_face=1",
                 "task.avatar.feature_dim=8", "task.avatar.heads=2", "task.avatar.expr_tokens=2",
                 "task.avatar.offset_hidden=16", "task.avatar.color_hidden=8", "task.avatar.use_audio=False",
                 f"task.data={tiny_identity}"]
    config = load_config("adapt_flashtalker", overrides)
    task = make_task(config.task)
    model = task.make_model(nnx.Rngs(0))
    batch = {k: jnp.asarray(v) for k, v in next(task.make_data(0, 1)).items()}
    params = FlameParams.from_track(batch, prefix="flame_", n_expr=model.flame.expr_dirs.shape[-1])
    settings = RenderSettings.from_config(config.task)
    images = {}
    for backend in ("pallas", "reference"):
        renderer = AvatarRenderer(model, dataclasses.replace(settings, backend=backend))
        rgb, lip, *_ = render(renderer, params, batch["viewmat"], batch["K"])
        images[backend] = (np.asarray(rgb), np.asarray(lip))
    rgb, lip = images["reference"]
    assert lip.max() > 0.2 and rgb.min() < 0.9  # the face and its lips are in view
    for got, want in zip(images["pallas"], images["reference"]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
