"""Talk2Me's Pose Refiner (4.3.2, appendix A.3 Figure 12) and its dual-branch discriminator.

    f_p = phi_p(p_hat (x) e')              Kronecker fusion of pose and expression embeddings
    h   = CrossAttention(f_p, audio)       pose queries attend to the audio of the window
    dp  = Linear(TransformerDecoder(h))    residual, p = p_hat + dp

Everything is in normalised units: pose offsets / the database's pose std, expression and
audio z-scored, so one learning rate fits rotation (rad) and translation (m) alike. The
last linear layer starts at zero: an untrained refiner returns the retrieved pose exactly,
and training only learns corrections (it can never be worse than retrieval at step 0).

Losses (`refiner_loss`, Talk2Me eq. 12): lambda_rec * L1(p, p_true) + lambda_vel * L1 of the
velocity + lambda_gan * LSGAN generator loss. Velocity: the paper writes L1(v, 0) (damps
all motion); `velocity_target="true"` (default) matches the true velocity instead, because
we measure the velocity ratio to ground truth and L1(v, 0) drives it below 1; "zero" is
the paper's form. The discriminator (`DualDiscriminator`) scores [pose, velocity] sequences
with a global branch (convolutions pooled over the whole window: is the trajectory
plausible) and a local branch (a score per short receptive field: is each motion snippet
plausible). Generator and discriminator train in ONE step of the project's trainer: the
generator's adversarial term sees the discriminator through stop_gradient, the
discriminator's loss sees the refined pose through stop_gradient, so each set of parameters
gets only its own gradient (simultaneous GAN updates with one optimiser).

Trainer task "pose_refiner" (`make_task`): windows of the identity's own tracked train
frames; the input is the leave-out retrieval track (each query retrieves no database window
within exclude_margin frames of itself), the target the true pose.
"""
from __future__ import annotations

import dataclasses
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.motion.pose.database import PoseDatabase, build_database
from flashtalker_jax.motion.pose.retrieval import Retriever, overlap_add, query_starts
from flashtalker_jax.train.data import ArrayBatchIterator
from flashtalker_jax.train.tasks import Task


@dataclasses.dataclass(frozen=True)
class RefinerDims:
    pose_dim: int
    expr_dim: int
    audio_dim: int        # per frame: steps_per_frame * mel bands
    window: int
    d_model: int = 64
    kron_dim: int = 12    # pose and expression embeddings before the outer product (kron_dim^2)
    num_heads: int = 4
    layers: int = 2
    ff_mult: int = 2

    @staticmethod
    def of(task: ml_collections.ConfigDict, db: PoseDatabase) -> "RefinerDims":
        m = task.model
        return RefinerDims(db.poses.shape[1], db.expr.shape[1], db.audio.shape[1] * db.steps_per_frame,
                           db.window, m.d_model, m.kron_dim, m.num_heads, m.layers, m.ff_mult)


class DecoderLayer(nnx.Module):
    """Pre-norm transformer decoder layer: self-attention, cross-attention to audio, MLP."""

    def __init__(self, d: int, heads: int, ff_mult: int, rngs: nnx.Rngs):
        self.norm1, self.norm2, self.norm3 = (nnx.LayerNorm(d, rngs=rngs) for _ in range(3))
        self.self_attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs)
        self.cross_attn = nnx.MultiHeadAttention(heads, d, decode=False, rngs=rngs)
        self.ff1, self.ff2 = nnx.Linear(d, ff_mult * d, rngs=rngs), nnx.Linear(ff_mult * d, d, rngs=rngs)

    def __call__(self, x, audio):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h)
        x = x + self.cross_attn(self.norm2(x), audio, audio)
        return x + self.ff2(nnx.gelu(self.ff1(self.norm3(x))))


class PoseRefiner(nnx.Module):
    """(pose (B, N, P), expr (B, N, E), audio (B, N, A)) normalised -> refined pose (B, N, P)."""

    def __init__(self, dims: RefinerDims, rngs: nnx.Rngs):
        d, k = dims.d_model, dims.kron_dim
        self.dims = dims
        self.pose_in, self.expr_in = nnx.Linear(dims.pose_dim, k, rngs=rngs), nnx.Linear(dims.expr_dim, k, rngs=rngs)
        self.fuse = nnx.Linear(k * k, d, rngs=rngs)          # phi_p over p (x) e
        self.pose_skip = nnx.Linear(dims.pose_dim, d, rngs=rngs)   # the pose itself, not only its products
        self.audio_in = nnx.Linear(dims.audio_dim, d, rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (dims.window, d)))
        self.layers = nnx.List([DecoderLayer(d, dims.num_heads, dims.ff_mult, rngs) for _ in range(dims.layers)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.out = nnx.Linear(d, dims.pose_dim, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, pose, expr, audio):
        b, n, p = pose.shape
        chex.assert_shape(pose, (b, n, self.dims.pose_dim))
        chex.assert_shape(expr, (b, n, self.dims.expr_dim))
        chex.assert_shape(audio, (b, n, self.dims.audio_dim))
        pe, ee = jnp.tanh(self.pose_in(pose)), jnp.tanh(self.expr_in(expr))
        kron = (pe[..., :, None] * ee[..., None, :]).reshape(b, n, -1)   # the Kronecker product per frame
        pos = self.position[...][:n]
        x = self.fuse(kron) + self.pose_skip(pose) + pos
        a = self.audio_in(audio) + pos
        for layer in self.layers:
            x = layer(x, a)
        return pose + self.out(self.norm(x))


class DualDiscriminator(nnx.Module):
    """[pose, velocity] (B, N, 2P) -> (global score (B,), local scores (B, N')) (module docstring)."""

    def __init__(self, pose_dim: int, width: int, rngs: nnx.Rngs):
        c = 2 * pose_dim
        self.g1 = nnx.Conv(c, width, (5,), strides=(2,), rngs=rngs)
        self.g2 = nnx.Conv(width, width, (5,), strides=(2,), rngs=rngs)
        self.g_out = nnx.Linear(width, 1, rngs=rngs)
        self.l1 = nnx.Conv(c, width, (3,), padding="VALID", rngs=rngs)
        self.l_out = nnx.Conv(width, 1, (3,), padding="VALID", rngs=rngs)

    def __call__(self, pose):
        seq = jnp.concatenate([pose[:, 1:], jnp.diff(pose, axis=1)], -1)
        g = nnx.leaky_relu(self.g2(nnx.leaky_relu(self.g1(seq), 0.2)), 0.2)
        local = self.l_out(nnx.leaky_relu(self.l1(seq), 0.2))[..., 0]
        return self.g_out(g.mean(1))[:, 0], local


class RefinerGAN(nnx.Module):
    """What the trainer optimises: the refiner and its discriminator (only the refiner is saved)."""

    def __init__(self, dims: RefinerDims, disc_width: int, rngs: nnx.Rngs):
        self.refiner = PoseRefiner(dims, rngs)
        self.disc = DualDiscriminator(dims.pose_dim, disc_width, rngs)


def _lsgan(scores, target: float):
    return sum(jnp.mean((s - target) ** 2) for s in scores)


def refiner_loss(model: RefinerGAN, batch: dict, weights: ml_collections.ConfigDict) -> tuple[jax.Array, dict]:
    """(loss, metrics) on a batch {retrieved, expr, audio, target} (module docstring)."""
    pred = model.refiner(batch["retrieved"], batch["expr"], batch["audio"])
    target = batch["target"]
    rec = jnp.mean(jnp.abs(pred - target))
    v_pred, v_true = jnp.diff(pred, axis=1), jnp.diff(target, axis=1)
    vel = jnp.mean(jnp.abs(v_pred - (v_true if weights.velocity_target == "true" else 0.0)))
    loss = weights.rec * rec + weights.vel * vel
    metrics = {"rec_l1": rec, "vel_l1": vel,
               "retrieval_l1": jnp.mean(jnp.abs(batch["retrieved"] - target))}
    if weights.gan > 0:
        graph, state = nnx.split(model.disc)
        frozen = nnx.merge(graph, jax.lax.stop_gradient(state))
        g_adv = _lsgan(frozen(pred), 1.0)
        d_loss = 0.5 * (_lsgan(model.disc(target), 1.0) + _lsgan(model.disc(jax.lax.stop_gradient(pred)), 0.0))
        loss = loss + weights.gan * g_adv + weights.disc * d_loss
        metrics.update(g_adv=g_adv, d_loss=d_loss)
    return loss, metrics


# ------------------------------------------------------------------ data

def normalised_inputs(db: PoseDatabase, expr_mean: np.ndarray, expr_std: np.ndarray, expr: np.ndarray,
                      offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pose offsets / pose std, z-scored expression features), float32."""
    return ((offsets / db.pose_std).astype(np.float32), ((expr - expr_mean) / expr_std).astype(np.float32))


def expr_stats(db: PoseDatabase) -> tuple[np.ndarray, np.ndarray]:
    return db.expr.mean(0), np.maximum(db.expr.std(0), 1e-3).astype(np.float32)


def leave_out_track(db: PoseDatabase, retriever: Retriever, margin: int) -> np.ndarray:
    """(T, P) retrieval of every run of the database from its own audio with no window within
    `margin` frames of the query (what the refiner sees at inference: retrieval from other
    moments), runs retrieved separately (their frames do not follow each other)."""
    audio = db.frame_audio()
    out = []
    for a, b in db.runs:
        starts = query_starts(b - a, db.window, retriever.overlap)
        sims = retriever.similarity(audio[a:b], starts)
        chosen = retriever.select(sims, starts + a, margin)
        out.append(overlap_add(retriever.pose_windows[chosen], starts, b - a, retriever.overlap))
    return np.concatenate(out)


def training_arrays(db: PoseDatabase, task: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Every window of `db.window` frames (stride task.train_stride) of each run:
    retrieved / expr / audio / target (W, N, *) float32, normalised."""
    retriever = Retriever(db, task.overlap, task.top_k, task.continuity_weight)
    retrieved = leave_out_track(db, retriever, task.exclude_margin)
    e_mean, e_std = expr_stats(db)
    pose_in, expr_in = normalised_inputs(db, e_mean, e_std, db.expr, retrieved)
    target = (db.poses / db.pose_std).astype(np.float32)
    audio = db.frame_audio()
    starts = np.concatenate([np.arange(a, b - db.window + 1, task.train_stride) for a, b in db.runs])
    idx = starts[:, None] + np.arange(db.window)
    return {"retrieved": pose_in[idx], "expr": expr_in[idx], "audio": audio[idx], "target": target[idx]}


def make_task_from_db(task: ml_collections.ConfigDict, db: PoseDatabase) -> Task:
    arrays = training_arrays(db, task)
    dims = RefinerDims.of(task, db)
    if len(arrays["target"]) < task.batch_size:
        raise ConfigError(f"{len(arrays['target'])} training windows, fewer than task.batch_size={task.batch_size}")

    def make_model(rngs: nnx.Rngs):
        return RefinerGAN(dims, task.model.disc_width, rngs)

    def loss_fn(model, batch, key):
        del key   # deterministic given the batch
        return refiner_loss(model, batch, task.loss)

    def make_data(process_index: int, process_count: int):
        return ArrayBatchIterator(arrays, task.batch_size, task.data_seed, process_index, process_count)

    return Task(make_model=make_model, loss_fn=loss_fn, make_data=make_data)


def database_of(task: ml_collections.ConfigDict) -> PoseDatabase:
    if not task.data:
        raise ConfigError("task.data is empty: set it to the identity's tracked VHAP folder (--data)")
    if not os.path.isdir(task.data):
        raise InputFileError(task.data, "tracked folder not found")
    return build_database(task.data, task.window, task.db_stride, task.n_expr)


def make_task(task: ml_collections.ConfigDict) -> Task:
    """The registered factory ("pose_refiner"): the database of task.data, its training windows."""
    return make_task_from_db(task, database_of(task))


# ------------------------------------------------------------------ inference

def refine_track(refiner: PoseRefiner, pose: np.ndarray, expr: np.ndarray, audio: np.ndarray,
                 overlap: int, batch: int = 64) -> np.ndarray:
    """Normalised (T, P), (T, E), (T, A) tracks of any length -> refined (T, P): the refiner
    on windows every N - overlap frames, stitched with the retrieval's overlap-add (so the
    refined track has no seams either). A clip shorter than a window is edge-padded."""
    n = refiner.dims.window
    t = pose.shape[0]
    chex.assert_equal_shape_prefix([pose, expr, audio], 1)
    starts = query_starts(t, n, overlap)
    idx = np.minimum(starts[:, None] + np.arange(n), t - 1)
    apply = _jitted_apply(refiner)
    out = np.concatenate([np.asarray(apply(pose[idx[i:i + batch]], expr[idx[i:i + batch]], audio[idx[i:i + batch]]))
                          for i in range(0, len(starts), batch)])
    return overlap_add(out, starts, t, overlap)


def _jitted_apply(refiner: PoseRefiner):
    graph, state = nnx.split(refiner)

    @jax.jit
    def apply(state, pose, expr, audio):
        return nnx.merge(graph, state)(pose, expr, audio)

    return lambda p, e, a: apply(state, jnp.asarray(p), jnp.asarray(e), jnp.asarray(a))
