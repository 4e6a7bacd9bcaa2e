"""jax.jit for metric functions that take vertex/landmark id lists."""

import functools
import inspect

import jax
import numpy as np


def jit_with_ids(*id_args: str, static_argnames=()):
    """jax.jit after turning the named id arguments (list, tuple or array) into int32 arrays.

    Without this a tuple of ids would reach jit as one traced scalar per id and index as a
    multi-axis index; as an array it is one argument and a gather along one axis.
    """
    def wrap(fn):
        jitted = jax.jit(fn, static_argnames=static_argnames)
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            for name in id_args:
                if bound.arguments.get(name) is not None:
                    bound.arguments[name] = np.asarray(bound.arguments[name], np.int32)
            return jitted(*bound.args, **bound.kwargs)

        return call

    return wrap
