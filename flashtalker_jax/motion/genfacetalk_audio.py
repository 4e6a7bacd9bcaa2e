"""GenFaceTalk's audio branch: x_D = E_audio(audio) read by the motion encoder's own
sub-encoders (Sec. 3.1: "For audio-driven scenarios, we replace the image encoder with an
audio encoder E_audio"), as a motion model beside the diffusion prior, Audio2Param and the
Expression Generator (same inputs, outputs and saved form: motion/tasks.py, task
"genfacetalk_audio").

  E_audio   per frame, its steps_per_frame feature rows (log-mel + energy, 81-d each)
            projected to `channels`, then residual causal dilated 1-D convolutions
            (kernel 3, dilations 1, 2, 4: 15 frames = 0.6 s of history, a syllable and
            its neighbours), then a projection to x_D of the image encoder's width
            (`feature`). A causal convolution rather than a transformer: x_D is a per-frame
            feature (the image branch sees one frame), so a local receptive field is the
            analogue, it needs no positional code (any length, no period alignment), costs
            linear time, and with its receptive field inside one inference warm-up period
            the streamed windows of motion/inference.py give every new frame its whole
            history. Causal like Audio2Param and the EG, for the same windows.
  heads     E_exp and E_pose (neck + jaw) of encoder/model.py (`motion_heads`: the same
            classes and variable paths), reading x_D; the motion is [expr[:n_expr] | jaw],
            the neck half of E_pose is predicted and unused (its pose comes from the video
            in `speak`, like the head pose). E_eye is not built: the a2e data's eye pose is
            random gaze the audio cannot predict and the motion interface does not carry
            it (blinks are expression coefficients); E_Trans and E_shape belong to the
            image (the camera, the source identity).

`task.heads_from = RUN` (a `pretrain-motion-encoder` folder) starts the heads from that
encoder's weights and takes its CodeStats as the run's motion normalisation, so the heads
read and write the code space they were trained in; `task.train_heads` fine-tunes them
(else frozen). Its FLAME model must be the data's (sha256, encoder/folder.read_encoder).
Loss: GenFaceTalk's soft FLAME-code loss (squared error of the normalised codes, weight
5), optionally our vertex term on the lips (mm^2, as Audio2Param's, `loss.vertices`).
There is no style input: the paper's audio branch is not conditioned on the speaker.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float

from flashtalker_jax.encoder.model import head_codes, motion_heads, motion_widths
from flashtalker_jax.errors import ConfigError

# Heads the audio branch builds, in the image encoder's MOTION_KEYS order (a prefix of it,
# so a code column has the same index in both branches: motion_columns).
AUDIO_KEYS = ("expr", "neck_jaw")


@dataclasses.dataclass(frozen=True)
class AudioBranchDims:
    n_expr: int                  # expression coefficients of the motion [expr | jaw]
    head_n_expr: int             # the expression head's width (>= n_expr: an encoder's)
    audio_dim: int
    steps_per_frame: int = 2
    channels: int = 128
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4)
    feature: int = 256           # x_D: the image encoder's global feature width
    hidden: int = 256            # the sub-encoders' hidden width

    @classmethod
    def from_config(cls, model: ml_collections.ConfigDict, n_expr: int, audio_dim: int) -> "AudioBranchDims":
        head_n_expr = int(model.head_n_expr) or n_expr
        if head_n_expr < n_expr:
            raise ConfigError(f"task.model.head_n_expr={head_n_expr} is below task.n_expr={n_expr}: "
                              "the expression head must predict every coefficient of the motion")
        return cls(n_expr=n_expr, head_n_expr=head_n_expr, audio_dim=audio_dim,
                   steps_per_frame=int(model.steps_per_frame), channels=int(model.channels),
                   kernel=int(model.kernel), dilations=tuple(int(d) for d in model.dilations),
                   feature=int(model.feature), hidden=int(model.hidden))

    @property
    def receptive_field(self) -> int:
        """Frames of history (this one included) a frame's x_D depends on."""
        return 1 + (self.kernel - 1) * sum(self.dilations)


def motion_columns(n_expr: int, head_n_expr: int) -> np.ndarray:
    """Indices of [expr[:n_expr] | jaw] in the heads' code vector (MOTION_KEYS order:
    expr (head_n_expr), neck (3), jaw (3), ...); the same indices pick the encoder's
    CodeStats columns."""
    jaw = motion_widths(head_n_expr)["expr"] + 3
    return np.concatenate([np.arange(n_expr), np.arange(jaw, jaw + 3)])


class AudioEncoder(nnx.Module):
    """E_audio: (B, s T, D) normalised feature rows -> x_D (B, T, feature), causal."""

    def __init__(self, dims: AudioBranchDims, rngs: nnx.Rngs):
        c = dims.channels
        self.steps_per_frame = dims.steps_per_frame
        self.project_in = nnx.Linear(dims.steps_per_frame * dims.audio_dim, c, rngs=rngs)
        # Padding (k - 1) d frames before and none after: frame t reads t - (k - 1) d .. t.
        self.convs = nnx.List([nnx.Conv(c, c, (dims.kernel,), kernel_dilation=(d,),
                                        padding=[((dims.kernel - 1) * d, 0)], rngs=rngs)
                               for d in dims.dilations])
        self.project = nnx.Linear(c, dims.feature, rngs=rngs)

    def __call__(self, audio: Float[Array, "B Ta D"], frame_mask: Bool[Array, "B T"]) -> Float[Array, "B T F"]:
        b, t = frame_mask.shape
        keep = frame_mask[..., None].astype(audio.dtype)
        # Padding frames are zeroed at every layer, so they read exactly as the convolution's
        # own zero padding: a window whose first frames lie before the clip (inference) and a
        # training crop that starts there see the same thing.
        x = jax.nn.silu(self.project_in(audio.reshape(b, t, -1))) * keep
        for conv in self.convs:
            x = (x + conv(jax.nn.silu(x))) * keep
        return jax.nn.silu(self.project(x))


class GenFaceTalkAudio(nnx.Module):
    def __init__(self, dims: AudioBranchDims, rngs: nnx.Rngs):
        self.dims = dims
        self.audio_encoder = AudioEncoder(dims, rngs)
        self.heads = motion_heads(AUDIO_KEYS, dims.feature, dims.hidden, dims.head_n_expr, rngs)

    def codes(self, audio: Float[Array, "B Ta D"], frame_mask: Bool[Array, "B T"]) -> Float[Array, "B T C"]:
        """The heads' normalised codes [expr (head_n_expr) | neck | jaw] of each frame."""
        return head_codes(self.heads, AUDIO_KEYS, self.audio_encoder(audio, frame_mask))

    def __call__(self, audio: Float[Array, "B Ta D"], frame_mask: Bool[Array, "B T"]) -> Float[Array, "B T P"]:
        """Normalised motion [expr[:n_expr] | jaw] (the run's motion normaliser's units)."""
        dims = self.dims
        b, t = frame_mask.shape
        chex.assert_shape(audio, (b, dims.steps_per_frame * t, dims.audio_dim))
        columns = motion_columns(dims.n_expr, dims.head_n_expr)
        return self.codes(audio, frame_mask)[..., columns]


@dataclasses.dataclass(frozen=True)
class HeadsSource:
    """A trained motion encoder's heads for task.heads_from: per key its variables (nnx
    State), and its CodeStats of the motion columns as (mean, std)."""
    path: Path
    states: dict
    mean: np.ndarray
    std: np.ndarray


def resolve_heads(task: ml_collections.ConfigDict, flame_file: Path) -> HeadsSource | None:
    """Read task.heads_from (None when empty) and write the encoder's head sizes (feature,
    hidden, head_n_expr) into task.model, so the saved run rebuilds the same heads without
    the encoder. ModelFileError naming `flame_file` when the encoder learned another FLAME
    model; ConfigError when it predicts fewer expression coefficients than task.n_expr."""
    from flashtalker_jax.encoder.folder import read_encoder

    if not task.heads_from:
        if not task.train_heads:
            raise ConfigError("task.train_heads=False freezes the heads, but task.heads_from is empty: "
                              "frozen random heads cannot learn; set task.heads_from=RUN (a motion encoder)")
        return None
    source = read_encoder(task.heads_from, flame_file)
    enc = source.task_cfg
    if int(enc.n_expr) < int(task.n_expr):
        raise ConfigError(f"task.heads_from={task.heads_from}: the encoder predicts {enc.n_expr} expression "
                          f"coefficients, task.n_expr={task.n_expr}: lower task.n_expr")
    task.model.update(feature=int(enc.model.feature), hidden=int(enc.model.hidden), head_n_expr=int(enc.n_expr))
    encoder = source.encoder
    columns = motion_columns(int(task.n_expr), int(enc.n_expr))
    states = {key: nnx.state(encoder.heads[key]) for key in AUDIO_KEYS}
    return HeadsSource(source.path, states, np.asarray(encoder.motion_mean[...])[columns],
                       np.asarray(encoder.motion_std[...])[columns])


def with_heads(model: GenFaceTalkAudio, source: HeadsSource) -> GenFaceTalkAudio:
    """The model with the encoder's head variables (constants: also under jit/eval_shape)."""
    for key in AUDIO_KEYS:
        nnx.update(model.heads[key], source.states[key])
    return model


def check_streaming(task: ml_collections.ConfigDict, dims: AudioBranchDims) -> None:
    """The receptive field must fit in the streamed windows' warm-up context (inference.py
    causal_window_sizes), or windowed frames would miss history they were trained with."""
    from flashtalker_jax.motion.inference import causal_window_sizes

    _, context, _ = causal_window_sizes(task.model.window, task.model.period)
    if dims.receptive_field > context + 1:
        raise ConfigError(f"task.model: E_audio sees {dims.receptive_field} frames (kernel {dims.kernel}, "
                          f"dilations {dims.dilations}) but streamed windows keep {context} frames of history "
                          f"(window {task.model.window}, period {task.model.period}): use smaller dilations "
                          "or a longer period")
