"""e2v pretraining input from a built TalkingHeads dataset, read lazily through grain.

`flashtalker pretrain-e2v --data D` has one batch format and two readers:
  D = identity folders        e2v/task.py load_identities + PairIterator (every frame in memory)
  D = `flashtalker data build-tfds` output (D/talking_heads/<version>, D/flame)
                              `make_record_data` here: grain over the array_record files,
                              frames decoded when a pair needs them (memory flat in the
                              number of identities and frames).
The batches are PairIterator's, equal array for array: src_<k> and tgt_<k> for k in
image (B, R, R, 3) uint8, mask (B, R, R) uint8, viewmat (B, 4, 4) and K (B, 3, 3) (scaled
to R) float32, flame_<key> (B, n) float32 (FRAME_KEYS); shape (B, S) the identity's shape.
Frames are box-resized to task.resolution as load_frames does; expression and shape
widths are zero-padded to the widest chosen identity (task.py pad_components: exact);
task.mask_source="head" reads each identity's mask as identity_mask_source decides
(recorded per identity at build time: `track`'s head masks, or a data-synth fg mask).

Pairs: the same rule, the same pairs. Element k of the grain source (`PairRecords`) is
global pair k: row k % B of step k // B, drawn by PairIterator.pairs itself (built on the
identity column alone) from (task.data_seed, step). A frame is addressed by its rank in
time within its identity's split (records are sorted by (identity, timestep));
PairIterator addresses it by its position in the split file: the same frame when split
files list frames in time order, as `data synth` and `track` write them.

Sharding: grain's DataLoader shards by JAX process (ShardOptions(process_index,
process_count)) and asks its sampler for index k n + p; `PairSampler` maps that to row
p b + k % b of step k // b (b = B / n): PairIterator's split of the global batch, so the
global batch is the same on any process count. Reading threads decode the PNGs in
parallel (grain.ReadOptions); there are no worker processes: grain would batch within
each worker's interleaved slice, which reorders rows (and its workers need absl flags
parsed, which the CLI does not do).

State: the stream is a function of (seed, step), so the iterator's state is the step
count {"step"} (`global_state`, as PairIterator's): a checkpoint resumes exactly on any
process count, and either reader resumes the other's run. grain's own per-process read
positions are not needed; a restored iterator starts a fresh loader at that step.
"""
from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import chex
import grain.python as grain
import ml_collections
import numpy as np
from PIL import Image, UnidentifiedImageError

from flashtalker_jax.avatar.frames import MASK_SOURCES, resize
from flashtalker_jax.data.pipeline import open_split, rebuild_hint
from flashtalker_jax.e2v.task import SIDES, PairIterator, pad_components
from flashtalker_jax.errors import ConfigError, InputFileError
from flashtalker_jax.flame.model import FRAME_KEYS
from flashtalker_jax.render.camera import scale_intrinsics

# Steps before the pair stream would wrap (grain sources are finite): beyond any run.
MAX_STEPS = 2 ** 40
# Decoded pairs read ahead per process, in steps (grain's default, 500 rows, would hold
# hundreds of 256 px pairs); the reading threads decode PNGs in parallel (PIL frees the GIL).
PREFETCH_STEPS = 2
READ_THREADS = 8


def is_built(dataset: str | Path) -> bool:
    """Whether `dataset` is a `data build-tfds` output (else: a folder of identity folders)."""
    from flashtalker_jax.data.tfds_builder import TalkingHeads

    return (Path(dataset) / TalkingHeads.name).is_dir()


@dataclasses.dataclass(frozen=True)
class IdentityRecords:
    """One chosen identity: its records [first, first + count) of `split`, its shape (S,)
    (padded) and the record field its masks come from."""
    split: str
    first: int
    count: int
    shape: np.ndarray
    mask_field: str


class PairRecords(grain.RandomAccessDataSource):
    """Element k: global pair k (step k // B, row k % B) decoded to PairIterator's row:
    {shape, src_<k>, tgt_<k>} (module docstring)."""

    def __init__(self, records: dict, identities: list[IdentityRecords], batch: int, seed: int,
                 resolution: int, expr_width: int, name: str, where: str):
        self._records, self._identities, self._name, self._where = records, identities, name, where
        self.batch, self.seed, self.resolution, self.expr_width = batch, int(seed), resolution, expr_width
        counts = [ident.count for ident in identities]
        self._first_row = np.cumsum([0, *counts])
        column = np.repeat(np.arange(len(identities), dtype=np.int32), counts)
        self._rule = PairIterator({"identity": column}, batch, seed)   # the in-memory route's draw
        self._cached = (-1, None)   # (step, its (B, 2) pairs): the B rows of a step share one draw

    def __repr__(self) -> str:
        return (f"PairRecords({self._name}, identities={len(self._identities)}, frames={self._first_row[-1]}, "
                f"batch={self.batch}, seed={self.seed}, resolution={self.resolution})")

    def __len__(self) -> int:
        return self.batch * MAX_STEPS

    def pairs(self, step: int) -> np.ndarray:
        """(B, 2) global frame rows of a step (PairIterator.pairs)."""
        cached_step, pairs = self._cached
        if cached_step != step:
            pairs = self._rule.pairs(step)
            self._cached = (step, pairs)
        return pairs

    def __getitem__(self, key: int) -> dict[str, np.ndarray]:
        step, row = divmod(int(key), self.batch)
        src, tgt = self.pairs(step)[row]
        element = {"shape": self._identities[self.identity_of(tgt)].shape}
        for name, frame_row in zip(SIDES, (src, tgt)):
            element.update({f"{name}_{k}": v for k, v in self.frame(int(frame_row)).items()})
        return element

    def identity_of(self, row: int) -> int:
        return int(np.searchsorted(self._first_row, row, side="right")) - 1

    def frame(self, row: int) -> dict[str, np.ndarray]:
        """load_frames' arrays (without the frame axis) of global frame row `row`."""
        index = self.identity_of(row)
        ident = self._identities[index]
        record = read_record(self._records, ident.split, ident.first + row - int(self._first_row[index]),
                             self._where)
        image = _decode_png(record["image"], "RGB", self._where)
        mask = _decode_png(record[ident.mask_field], "L", self._where)
        width = image.shape[1]
        K = scale_intrinsics(np.asarray(record["K"], np.float32), self.resolution / width)
        out = {"image": resize(image, self.resolution), "mask": resize(mask, self.resolution),
               "viewmat": np.asarray(record["w2c"], np.float32), "K": K}
        for key in FRAME_KEYS:
            out[f"flame_{key}"] = np.asarray(record[key], np.float32)
        out["flame_expr"] = np.pad(out["flame_expr"], (0, self.expr_width - out["flame_expr"].shape[0]))
        chex.assert_shape([out["image"], out["mask"]], [(self.resolution, self.resolution, 3),
                                                        (self.resolution, self.resolution)])
        return out


def read_record(records: dict, split: str, index: int, where: str) -> dict:
    """Record `index` of `split`; a damaged array_record file (the reader raises
    RuntimeError: truncated, hash mismatch) becomes an error naming the dataset."""
    try:
        return records[split][index]
    except RuntimeError as exc:
        raise InputFileError(where, f"the {split!r} array_record files do not read ({exc})",
                             rebuild_hint(where)) from exc


def _decode_png(data: bytes, mode: str, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputFileError(where, f"a stored frame does not decode ({exc})", rebuild_hint(where)) from exc


class PairSampler:
    """grain sampler: the DataLoader of process p of n asks for its k-th element as index
    k n + p; that is row p b + k % b of step start + k // b (b = B / n), global pair
    (start + k // b) B + p b + k % b."""

    def __init__(self, batch: int, process_count: int, start_step: int):
        self._batch, self._count, self._start = batch, process_count, start_step
        self._local = batch // process_count

    def __repr__(self) -> str:
        return f"PairSampler(batch={self._batch}, process_count={self._count}, start_step={self._start})"

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        k, process = divmod(index, self._count)
        step, row = divmod(k, self._local)
        key = (self._start + step) * self._batch + process * self._local + row
        return grain.RecordMetadata(index=index, record_key=key)


class RecordPairIterator:
    """This process's batches of a PairRecords source: PairIterator's, read through grain.
    State {"step"}, global (module docstring)."""

    global_state = True

    def __init__(self, source: PairRecords, process_index: int = 0, process_count: int = 1):
        if source.batch % process_count:
            raise ConfigError(f"global batch {source.batch} must divide over {process_count} processes")
        self._source, self._index, self._count = source, process_index, process_count
        self._local = source.batch // process_count
        self._step, self._batches = 0, None

    def __iter__(self):
        return self

    def _loader(self):
        return iter(grain.DataLoader(
            data_source=self._source, sampler=PairSampler(self._source.batch, self._count, self._step),
            shard_options=grain.ShardOptions(self._index, self._count), worker_count=0,
            operations=[grain.Batch(self._local, drop_remainder=True)],
            read_options=grain.ReadOptions(num_threads=min(READ_THREADS, PREFETCH_STEPS * self._local),
                                           prefetch_buffer_size=PREFETCH_STEPS * self._local)))

    def __next__(self) -> dict[str, np.ndarray]:
        if self._batches is None:   # first batch, or after set_state: a loader from this step
            self._batches = self._loader()
        batch = next(self._batches)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        return {"step": self._step}

    def set_state(self, state: dict) -> None:
        self._step, self._batches = int(state["step"]), None


def _identity_split(dataset: Path, name: str, counts: dict[str, int], splits) -> str:
    """split_indices' choice on the build's metadata: the first of `splits` with frames."""
    for split in splits:
        if counts.get(split, 0):
            return split
    raise InputFileError(dataset, f"identity {name} has no frames in splits {list(splits)}",
                         "check task.train_splits")


def _mask_field(dataset: Path, name: str, mask_source: str, head_source: str | None) -> str:
    if mask_source not in MASK_SOURCES:
        raise ConfigError(f"task.mask_source={mask_source!r}: use one of {MASK_SOURCES}")
    if mask_source == "fg" or head_source == "fg":
        return "mask"
    if head_source == "head":
        return "head_mask"
    raise InputFileError(dataset, f"task.mask_source='head' but identity {name} was built without head masks "
                                  "(no head_masks/, not a data-synth identity)",
                         "track the clip with `flashtalker track` (it writes head_masks/), then "
                         f"{rebuild_hint(str(dataset))}; or use task.mask_source='fg'")


def open_pairs(task_cfg: ml_collections.ConfigDict) -> PairRecords:
    """The pair source of the built dataset task.dataset for the e2v task's settings."""
    import tensorflow_datasets as tfds

    dataset = Path(task_cfg.dataset)
    splits = tuple(task_cfg.train_splits)
    builder = open_split(dataset, splits[0])   # refuses other versions, naming the rebuild
    meta = builder.info.metadata
    names = list(meta["identities"])
    stop = None if task_cfg.max_identities < 0 else task_cfg.identity_start + task_cfg.max_identities
    chosen = range(len(names))[task_cfg.identity_start:stop]
    if not chosen:
        raise InputFileError(dataset, f"no identities in [{task_cfg.identity_start}, {stop})",
                             "check task.identity_start / task.max_identities")
    present = [s for s in splits if s in builder.info.splits]
    skip = {"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}
    records = {s: builder.as_data_source(split=s, decoders=skip) for s in present}
    identities, parts = [], []
    for i in chosen:
        counts = {s: len(meta["timesteps"][s][i]) for s in present}
        split = _identity_split(dataset, names[i], counts, splits)
        if counts[split] < 2:
            raise InputFileError(dataset, f"identity {names[i]}: {counts[split]} frame(s) in split {split!r}: "
                                          "a pair needs two")
        first = sum(len(t) for t in meta["timesteps"][split][:i])
        record = read_record(records, split, first, str(dataset))
        parts.append({"shape": np.asarray(record["shape"], np.float32)[None],
                      "flame_expr": np.asarray(record["expr"], np.float32)[None]})
        size = _decode_png(record["image"], "RGB", str(dataset)).shape
        if size[0] != size[1]:
            raise InputFileError(dataset, f"identity {names[i]}: frames are {size[1]}x{size[0]}; pretraining "
                                          "expects square frames", "crop the frames to a square and rebuild")
        identities.append((split, first, counts[split],
                           _mask_field(dataset, names[i], task_cfg.mask_source, meta["head_mask_source"][i])))
    pad_components(parts, ("shape", "flame_expr"))
    table = [IdentityRecords(split, first, count, part["shape"][0], field)
             for (split, first, count, field), part in zip(identities, parts)]
    return PairRecords(records, table, task_cfg.batch_size, task_cfg.data_seed, task_cfg.resolution,
                       parts[0]["flame_expr"].shape[1], name=builder.info.full_name, where=str(dataset))


def make_record_data(task_cfg: ml_collections.ConfigDict):
    """Task.make_data of a built dataset: (process_index, process_count) -> this process's
    batch iterator."""
    source = open_pairs(task_cfg)

    def make_data(process_index: int, process_count: int) -> RecordPairIterator:
        return RecordPairIterator(source, process_index, process_count)

    return make_data
