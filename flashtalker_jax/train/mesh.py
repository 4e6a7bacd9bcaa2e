"""Device mesh and shardings: a 2-D mesh over ("data", "model") axes.

Batches are split along "data" (leading axis). Parameters and optimiser state follow one
shape rule: a leaf with >= 2 dims whose last dim divides by the "model" axis size is split
along "model" on that dim; every other leaf is replicated. With model=1 that is plain
data parallelism. The rule depends only on shapes, so the same rule shards a freshly
initialised state and a restored one (restore into a different mesh).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from flashtalker_jax.errors import ConfigError

DATA, MODEL = "data", "model"


def make_mesh(data: int = -1, model: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, model) mesh over `devices` (default: all global devices).

    data=-1 takes every device not used by the model axis. Axis types are Auto (GSPMD
    propagation), which new JAX versions no longer default to.
    """
    devices = list(jax.devices() if devices is None else devices)
    if model < 1 or len(devices) % model:
        raise ConfigError(f"mesh.model={model} does not divide the {len(devices)} devices")
    if data == -1:
        data = len(devices) // model
    if data * model != len(devices):
        raise ConfigError(f"mesh data={data} x model={model} needs {data * model} devices, "
                          f"found {len(devices)}")
    return jax.make_mesh((data, model), (DATA, MODEL), axis_types=(AxisType.Auto,) * 2,
                         devices=devices)


def leaf_spec(shape: Sequence[int], model_size: int) -> P:
    """The partition spec of one parameter/optimiser leaf under the shape rule above."""
    if model_size > 1 and len(shape) >= 2 and shape[-1] % model_size == 0:
        return P(*([None] * (len(shape) - 1)), MODEL)
    return P()


def state_shardings(mesh: Mesh, abstract_state: Any) -> Any:
    """NamedShardings for every leaf of an (abstract) state pytree."""
    model_size = mesh.shape[MODEL]
    return jax.tree.map(lambda x: NamedSharding(mesh, leaf_spec(x.shape, model_size)), abstract_state)


def with_shardings(abstract_state: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying target shardings (what Orbax restores into)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        abstract_state, shardings)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (example) axis split over "data", replicated over "model"."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
