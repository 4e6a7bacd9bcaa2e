"""LPIPS (Zhang et al. 2018, package `lpips` v0.1) as a Flax NNX port: AlexNet and VGG16.

d(a, b) = sum over 5 backbone layers l of mean over pixels of w_l . (f_l(a) - f_l(b))^2,
where f_l are channel-normalised (x / (||x||_2 + 1e-10)) activations of torchvision's
`features` stack at lpips's tap points, on inputs in [-1, 1] shifted and scaled by lpips's
ScalingLayer, and w_l are the non-negative 1x1 "lin" layers.

Weights are user-supplied local files, never downloaded: the torchvision backbone
(`alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`, keys `features.<i>.weight|bias`, or a
whole lpips state dict with `net.slice<k>.<i>.*`) and the lpips lin layers (the package's
`weights/v0.1/alex.pth` / `vgg.pth`, keys `lin<l>.model.<j>.weight`); .pth (zip or legacy)
or .safetensors. Without both files LPIPS is unavailable (`try_load_lpips` says why); it is
never reported as zero.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.torch_weights import load_torch_weights

# torchvision `features` layouts, position = torchvision index:
# ("conv", in, out, kernel, stride, padding) | ("relu",) | ("pool", kernel, stride).
_VGG_WIDTHS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def _vgg16_layout():
    layout, channels = [], 3
    for width in _VGG_WIDTHS:
        if width == "M":
            layout.append(("pool", 2, 2))
        else:
            layout += [("conv", channels, width, 3, 1, 1), ("relu",)]
            channels = width
    return tuple(layout)


LAYOUTS = {
    "alex": (("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
             ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
             ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
             ("conv", 256, 256, 3, 1, 1), ("relu",)),
    "vgg": _vgg16_layout(),
}
# lpips taps the output after these torchvision indices (relu1..relu5 / relu1_2..relu5_3).
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
_BACKBONE_KEY = re.compile(r"(?:^|\.)(?:features|net\.slice\d+)\.(\d+)\.(weight|bias)$")
_LIN_KEY = re.compile(r"(?:^|\.)lin(\d+)\.model\.\d+\.weight$")


class LPIPS(nnx.Module):
    """LPIPS network for `net` in ("alex", "vgg"). Parameters start at zero (random init of
    VGG16 alone took ~20 s on CPU, and it would be thrown away): use `load_lpips`."""

    def __init__(self, net: str):
        if net not in LAYOUTS:
            raise ValueError(f"LPIPS net must be one of {sorted(LAYOUTS)}, got {net!r}")
        self.net = net
        convs = [(i, spec) for i, spec in enumerate(LAYOUTS[net]) if spec[0] == "conv"]
        self.conv_index = tuple(i for i, _ in convs)
        zeros, rngs = nnx.initializers.zeros, nnx.Rngs(0)
        self.convs = nnx.List([
            nnx.Conv(cin, cout, (k, k), strides=stride, padding=((pad, pad), (pad, pad)),
                     precision=jax.lax.Precision.HIGHEST, kernel_init=zeros, rngs=rngs)
            for _, (_, cin, cout, k, stride, pad) in convs])
        widths = [LAYOUTS[net][i - 1][2] for i in TAPS[net]]  # conv before each tapped relu
        self.lins = nnx.List([nnx.Conv(c, 1, (1, 1), use_bias=False, kernel_init=zeros,
                                       precision=jax.lax.Precision.HIGHEST, rngs=rngs)
                              for c in widths])

    def features(self, x):
        """Tapped activations of (N, H, W, 3) scaled inputs: list of 5 (N, h, w, C)."""
        convs = dict(zip(self.conv_index, self.convs))
        taps = []
        for i, spec in enumerate(LAYOUTS[self.net][: TAPS[self.net][-1] + 1]):
            if spec[0] == "conv":
                x = convs[i](x)
            elif spec[0] == "relu":
                x = jax.nn.relu(x)
            else:
                _, k, stride = spec
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1),
                                          (1, stride, stride, 1), "VALID")
            if i in TAPS[self.net]:
                taps.append(x)
        return taps

    def __call__(self, a, b):
        """Distance of (N, H, W, 3) image batches in [-1, 1] -> (N,)."""
        x = (jnp.concatenate([a, b]) - SHIFT) / SCALE
        total = 0.0
        for feat, lin in zip(self.features(x), self.lins):
            feat = feat / (jnp.sqrt(jnp.sum(feat**2, axis=-1, keepdims=True)) + 1e-10)
            fa, fb = jnp.split(feat, 2)
            total = total + jnp.mean(lin((fa - fb) ** 2), axis=(1, 2, 3))
        return total


@nnx.jit
def _distance(model: LPIPS, a, b):
    return model(a, b)


def lpips_distance(model: LPIPS, a, b, normalize: bool = False, batch_size: int = 8):
    """LPIPS of (..., H, W, 3) images in [-1, 1] ([0, 1] with normalize=True) -> (...).

    Images go through the network `batch_size` pairs at a time: VGG16's first layers hold
    64 channels at full resolution, about 0.1 GB per 512x512 image pair.
    """
    if a.shape != b.shape or a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"LPIPS needs two RGB image arrays of one shape, got {a.shape}, {b.shape}")
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if normalize:
        a, b = 2 * a - 1, 2 * b - 1
    lead = a.shape[:-3]
    a, b = a.reshape((-1,) + a.shape[-3:]), b.reshape((-1,) + b.shape[-3:])
    chunks = [_distance(model, a[i : i + batch_size], b[i : i + batch_size])
              for i in range(0, a.shape[0], batch_size)]
    return jnp.concatenate(chunks).reshape(lead)


def _assign(param: nnx.Param, value: np.ndarray, name: str, path: str) -> None:
    if param.shape != value.shape:
        raise ModelFileError(path, f"{name} has shape {value.shape}, the network needs"
                                   f" {param.shape}", "check the file matches the LPIPS net")
    param.set_value(jnp.asarray(value, jnp.float32))


def load_lpips(net: str, backbone_path: str | os.PathLike, lin_path: str | os.PathLike) -> LPIPS:
    """LPIPS with torchvision backbone weights and lpips lin weights read from local files."""
    model = LPIPS(net)
    backbone = {}
    for key, value in load_torch_weights(backbone_path).items():
        if match := _BACKBONE_KEY.search(key):
            backbone[(int(match.group(1)), match.group(2))] = value
    for index, conv in zip(model.conv_index, model.convs):
        for kind in ("weight", "bias"):
            if (index, kind) not in backbone:
                raise ModelFileError(backbone_path, f"no features.{index}.{kind} for the {net}"
                                     " backbone", "pass torchvision's weight file for this net")
        _assign(conv.kernel, backbone[(index, "weight")].transpose(2, 3, 1, 0),
                f"features.{index}.weight", os.fspath(backbone_path))
        _assign(conv.bias, backbone[(index, "bias")], f"features.{index}.bias",
                os.fspath(backbone_path))
    lins = {int(m.group(1)): v for k, v in load_torch_weights(lin_path).items()
            if (m := _LIN_KEY.search(k))}
    for layer, lin in enumerate(model.lins):
        if layer not in lins:
            raise ModelFileError(lin_path, f"no lin{layer} weight",
                                 "pass lpips's weights/v0.1 file")
        _assign(lin.kernel, lins[layer].transpose(2, 3, 1, 0), f"lin{layer}", os.fspath(lin_path))
    return model


def try_load_lpips(net: str, backbone_path, lin_path) -> tuple[LPIPS | None, str]:
    """(model, "") when both weight paths are given, else (None, why LPIPS is unavailable).

    Given paths that are missing or malformed still raise ModelFileError: the user asked
    for them, so silently skipping the metric would hide the mistake.
    """
    missing = [name for name, path in (("backbone", backbone_path), ("lin", lin_path)) if not path]
    if missing:
        return None, (f"unavailable: no LPIPS {' and '.join(missing)} weights given (needs "
                      f"torchvision {net} weights and the lpips package's lin layers, local files)")
    return load_lpips(net, backbone_path, lin_path), ""
