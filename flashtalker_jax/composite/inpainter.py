"""GGTalker's body inpainter: a small U-Net that fills the seam between a rendered head and
the real torso and background of the source frame,

    I_vid = Inpainter(I_res, (1 - Dilate(M)) * I_ori)

where I_res is the avatar's render (rgb + alpha), I_ori the source frame and M the head
region (the render's alpha and the tracked head-and-neck mask). The dilated region is
removed from the frame, the net paints it from the head render and the surrounding
context, and every pixel outside it is the frame itself (`composite`).

Design:
- The net predicts a residual on a base image, base = alpha * head + (1 - alpha) *
  masked frame, and its last convolution starts at zero, so an untrained net already
  gives the plain paste (the head over the frame with a hole around it) and training only
  has to learn the fill.
- Fully convolutional (3x3 convolutions, strided-conv downsampling, nearest-resize + conv
  upsampling to avoid checkerboard artefacts, skips at every level): it trains on patches
  around the seam and runs on whole frames of any size divisible by 2^depth.
- No normalisation by default: GroupNorm's statistics pool over the whole image, so a net
  trained on 128 px patches would see other statistics on a 512 px frame at inference.
- The inpainter folder (`save_inpainter` / `load_inpainter`) is versioned and
  self-contained: config.json (format_version, the model config, the task config, the
  sha256 of params.npz) and params.npz (every parameter by its path).

Images are float in [0, 1]: rgb (B, H, W, 3), alpha and masks (B, H, W).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ModelFileError
from flashtalker_jax.utils.files import atomic_path, read_npz, sha256_file

IN_CHANNELS = 8          # head rgb (3) + head alpha (1) + masked frame (3) + keep mask (1)
FORMAT_VERSION = 1
MODEL_KEYS = ("base_channels", "depth", "norm_groups", "activation")
ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu}
RETRAIN = "retrain it with train_inpainter (composite/train_inpainter.py), which writes RUN/inpainter"


# ------------------------------------------------------------------ masks

def _grow_once(mask: jax.Array) -> jax.Array:
    """3x3 max filter of (B, H, W); outside pixels are ignored (reduce_window pads with the
    init value -inf), which matches scipy's zero border for masks in [0, 1]."""
    return jax.lax.reduce_window(mask, -jnp.inf, jax.lax.max, (1, 3, 3), (1, 1, 1), "SAME")


def dilate(mask: jax.Array, radius: jax.Array | int) -> jax.Array:
    """Grey/binary dilation of (B, H, W) masks by a (2r+1) x (2r+1) square, r = `radius`
    (an int or a per-sample (B,) integer array, traced or not; r <= 0 leaves a sample as is).

    Iterated 3x3 max: r passes of a 3x3 max filter equal one (2r+1)^2 square max, and a
    per-sample radius is simply "stop updating this sample after r passes" inside a
    while_loop up to max(r), so the radius may be traced without a static bound (a
    reduce_window of the largest radius plus a distance threshold would need one) and
    costs O(r H W) cheap passes (24 passes over 512^2 is nothing next to the U-Net).
    The square is the structuring element scipy's binary_dilation(iterations=r) uses with
    a 3x3 structure. No gradient flows through the mask (it comes from thresholding).
    """
    mask = jax.lax.stop_gradient(jnp.asarray(mask, jnp.float32))
    chex.assert_rank(mask, 3)
    radius = jnp.broadcast_to(jnp.asarray(radius, jnp.int32), mask.shape[:1])

    def keep_growing(carry):
        step, _ = carry
        return step < jnp.max(radius)

    def grow(carry):
        step, current = carry
        growing = (step < radius)[:, None, None]
        return step + 1, jnp.where(growing, _grow_once(current), current)

    _, grown = jax.lax.while_loop(keep_growing, grow, (jnp.zeros((), jnp.int32), mask))
    return grown


def remove_region(head_alpha: jax.Array, head_mask: jax.Array, radius: jax.Array | int) -> jax.Array:
    """(B, H, W) float {0, 1}: the pixels the inpainter repaints, the head (render alpha
    > 0.5, or the tracked head-and-neck mask > 0.5) dilated by `radius` px. The union
    matters: the render covers the new head, the mask the source frame's own head, and
    both must go (a source chin below a closed rendered mouth would show otherwise)."""
    chex.assert_rank([head_alpha, head_mask], 3)
    chex.assert_equal_shape([head_alpha, head_mask])
    head = (head_alpha > 0.5) | (head_mask > 0.5)
    return dilate(head.astype(jnp.float32), radius)


# ------------------------------------------------------------------ model

class ConvBlock(nnx.Module):
    """Two 3x3 convolutions, each followed by optional GroupNorm and the activation."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int, activation: str,
                 rngs: nnx.Rngs):
        self.convs = nnx.List([nnx.Conv(in_channels, out_channels, (3, 3), rngs=rngs),
                               nnx.Conv(out_channels, out_channels, (3, 3), rngs=rngs)])
        # gcd: a group count that always divides the width (base 12 -> 12, 24, 48 channels).
        self.norms = nnx.List([nnx.GroupNorm(out_channels, num_groups=math.gcd(norm_groups, out_channels),
                                             rngs=rngs) for _ in range(2)]) if norm_groups else None
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = act(x)
        return x


class BodyInpainter(nnx.Module):
    """U-Net over the 8 input channels with widths base * 2^level, level 0..depth.

    Encoder: a ConvBlock per level, a stride-2 3x3 conv between levels. Decoder: nearest
    2x upsampling + 3x3 conv (resize-conv), concatenation with the encoder's skip, a
    ConvBlock. A zero-initialised 3x3 conv gives the rgb residual on the base image.
    """

    def __init__(self, base_channels: int = 16, depth: int = 3, norm_groups: int = 0,
                 activation: str = "silu", *, rngs: nnx.Rngs):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        if depth < 0 or base_channels < 1:
            raise ValueError(f"need depth >= 0 and base_channels >= 1, got {depth}, {base_channels}")
        self.depth = int(depth)
        widths = [base_channels * 2**level for level in range(depth + 1)]
        block = lambda a, b: ConvBlock(a, b, norm_groups, activation, rngs)  # noqa: E731
        self.stem = block(IN_CHANNELS, widths[0])
        self.downs = nnx.List([nnx.Conv(a, b, (3, 3), strides=2, rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.down_blocks = nnx.List([block(b, b) for b in widths[1:]])
        self.ups = nnx.List([nnx.Conv(b, a, (3, 3), rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.up_blocks = nnx.List([block(2 * a, a) for a in widths[:-1]])
        self.out = nnx.Conv(widths[0], 3, (3, 3), kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.activation = activation

    def __call__(self, head_rgb: jax.Array, head_alpha: jax.Array, masked_frame: jax.Array,
                 keep: jax.Array) -> jax.Array:
        """(B, H, W, 3) rgb in [0, 1]: clip(base + residual) (module docstring)."""
        base = base_image(head_rgb, head_alpha, masked_frame)
        # Centred inputs ([-1, 1]) so the first layer's zero-mean weights see zero-mean data.
        x = jnp.concatenate([head_rgb, head_alpha[..., None], masked_frame, keep[..., None]], -1) * 2 - 1
        return jnp.clip(base + self.residual(x), 0.0, 1.0)

    def residual(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        skips = [self.stem(x)]
        for down, block in zip(self.downs, self.down_blocks):
            skips.append(block(act(down(skips[-1]))))
        x = skips.pop()
        for level in reversed(range(self.depth)):
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)   # nearest 2x
            x = act(self.ups[level](x))
            x = self.up_blocks[level](jnp.concatenate([x, skips.pop()], -1))
        return self.out(x)


def base_image(head_rgb: jax.Array, head_alpha: jax.Array, masked_frame: jax.Array) -> jax.Array:
    """The plain paste the net corrects: alpha * head + (1 - alpha) * masked frame."""
    alpha = head_alpha[..., None]
    return alpha * head_rgb + (1 - alpha) * masked_frame


def make_inpainter(cfg, rngs: nnx.Rngs) -> BodyInpainter:
    """The net sized by a config holding MODEL_KEYS (the task config, or config.json's model)."""
    return BodyInpainter(int(cfg["base_channels"]), int(cfg["depth"]), int(cfg["norm_groups"]),
                         str(cfg["activation"]), rngs=rngs)


# ------------------------------------------------------------------ compositing

def check_size(height: int, width: int, depth: int) -> None:
    """ValueError unless H and W are divisible by 2^depth (each level halves them exactly)."""
    factor = 2**depth
    if height % factor or width % factor:
        raise ValueError(f"frames of {height}x{width} px cannot pass a depth-{depth} inpainter: height and width "
                         f"must be multiples of {factor} (pad or crop the frame)")


def composite(net: BodyInpainter, head_rgb: jax.Array, head_alpha: jax.Array, frame: jax.Array,
              remove_mask: jax.Array) -> jax.Array:
    """(B, H, W, 3) in [0, 1]: the frame outside `remove_mask`, the net's fill inside.

    head_rgb, frame (B, H, W, 3) and head_alpha, remove_mask (B, H, W), float in [0, 1].
    keep = 1 - remove_mask; the net sees frame * keep, so it can never copy what it must
    replace; final = keep * frame + (1 - keep) * net output, so where keep == 1 the result
    is exactly the frame (1 * x + 0 * y == x in floating point for a finite y).
    """
    chex.assert_rank([head_rgb, head_alpha, frame, remove_mask], [4, 3, 4, 3])
    chex.assert_equal_shape([head_rgb, frame])
    chex.assert_equal_shape([head_alpha, remove_mask])
    chex.assert_equal_shape_prefix([head_rgb, head_alpha], 3)
    chex.assert_axis_dimension(frame, -1, 3)
    check_size(frame.shape[1], frame.shape[2], net.depth)
    keep = (1.0 - remove_mask)[..., None]
    painted = net(head_rgb, head_alpha, frame * keep, keep[..., 0])
    return keep * frame + (1.0 - keep) * painted


def seam_l1(composited: jax.Array, frame: jax.Array, remove_mask: jax.Array) -> jax.Array:
    """Mean absolute error over the removed region only (the pixels the net paints),
    pooled over the batch; 0 when nothing is removed."""
    chex.assert_equal_shape([composited, frame])
    weight = remove_mask[..., None]
    total = jnp.sum(jnp.abs(composited - frame) * weight)
    return total / jnp.maximum(jnp.sum(weight) * frame.shape[-1], 1.0)


# ------------------------------------------------------------------ inpainter folder

def flat_params(net: BodyInpainter) -> dict[str, np.ndarray]:
    """{parameter path: array}, the keys of params.npz."""
    from flashtalker_jax.train.state import key_path_str

    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(net, nnx.Param))[0]
    return {key_path_str(path): np.asarray(value) for path, value in leaves}


def save_inpainter(folder, net: BodyInpainter, cfg: ml_collections.ConfigDict) -> Path:
    """Write the inpainter folder (module docstring) and return its path. `cfg` is the task
    config (it holds MODEL_KEYS). params.npz is written first and config.json, which holds
    its sha256, last, each atomically, so a folder is only ever read whole."""
    folder = Path(folder)
    with atomic_path(folder / "params.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **flat_params(net))
    task = json.loads(json.dumps(cfg.to_dict(), default=str))
    meta = {"format_version": FORMAT_VERSION, "model": {k: task[k] for k in MODEL_KEYS}, "task": task,
            "params_sha256": sha256_file(folder / "params.npz")}
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return folder


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ModelFileError(path.parent, "not an inpainter folder: config.json is missing", RETRAIN)
    try:
        meta = json.loads(path.read_text())
        version = meta.get("format_version")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFileError(path, f"cannot read the inpainter config ({type(exc).__name__}: {exc})", RETRAIN)
    if version != FORMAT_VERSION:
        raise ModelFileError(path, f"inpainter format_version {version!r}, this version reads {FORMAT_VERSION}",
                             RETRAIN)
    missing = [k for k in ("model", "task", "params_sha256") if k not in meta]
    missing += [f"model.{k}" for k in MODEL_KEYS if k not in meta.get("model", {})]
    if missing:
        raise ModelFileError(path, f"inpainter config lacks {', '.join(missing)}", RETRAIN)
    return meta


def _params_into(model_cfg: dict, arrays: dict[str, np.ndarray], path: Path) -> BodyInpainter:
    """The net of `model_cfg` holding the saved arrays; ModelFileError naming params.npz for
    a missing, extra or wrongly shaped parameter. The net is built abstractly (eval_shape)
    and filled, never initialised: eager initialisation compiles every initializer
    shape by shape (seconds on CPU) only to be overwritten."""
    from flashtalker_jax.train.state import key_path_str

    abstract = nnx.eval_shape(lambda: make_inpainter(model_cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    expected = {key_path_str(p): v.shape for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ModelFileError(path, f"parameters do not match the model of config.json (missing {missing}, "
                             f"unexpected {extra})", RETRAIN)
    wrong = {k: (arrays[k].shape, shape) for k, shape in expected.items() if arrays[k].shape != shape}
    if wrong:
        raise ModelFileError(path, "parameter shapes differ from the model of config.json: "
                             + ", ".join(f"{k} {got} (expected {want})" for k, (got, want) in wrong.items()),
                             RETRAIN)
    filled = jax.tree_util.tree_map_with_path(lambda p, v: jnp.asarray(arrays[key_path_str(p)], v.dtype), state)
    return nnx.merge(graphdef, filled)


def load_inpainter(folder) -> tuple[BodyInpainter, ml_collections.ConfigDict]:
    """(net, task config) of an inpainter folder. ModelFileError naming the file for a
    missing folder or file, another format version, a params.npz whose sha256 differs from
    the one config.json recorded, or arrays that do not fit the recorded model."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(folder, "inpainter folder not found", RETRAIN)
    meta = _read_config(folder / "config.json")
    params_path = folder / "params.npz"
    if params_path.is_file() and sha256_file(params_path) != meta["params_sha256"]:
        raise ModelFileError(params_path, "sha256 differs from the one config.json recorded (damaged or "
                             "replaced file)", RETRAIN)
    arrays = read_npz(params_path, "inpainter parameters", RETRAIN)
    return _params_into(meta["model"], arrays, params_path), ml_collections.ConfigDict(meta["task"])
