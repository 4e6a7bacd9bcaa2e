"""A tensorflow-datasets builder packing many VHAP-format identities for pretraining.

Works without TensorFlow: images are stored as pre-encoded PNG bytes (tfds cannot encode
numpy images without TF), audio as a float32 Tensor (the Audio feature needs TF), and the
files are array_record, read by `tfds.data_source` + grain.

One example = one frame of one identity: image, mask, FLAME params, camera, the frame's
own audio samples (sample_rate / fps of them), so a window of consecutive records carries
its exact audio, and `audio_margins` (2, sample_rate / fps): the previous and the next
timestep's samples (zeros outside the clip). Log-mel rows near a window's edges analyse
audio a little beyond it, and the neighbouring frames may sit in another split: with the
margins a window's features equal the whole clip's (data/pipeline.py window_log_mel).
For e2v pretraining (e2v/records.py) a frame also carries what `load_frames` reads: w2c
(the float64 inverse of c2w, as VHAP readers compute it, then float32) and `head_mask`
(PNG bytes of `track`'s head-and-neck mask; b"" where the identity has none:
`info.metadata["head_mask_source"]` says per identity which mask task.mask_source="head"
means, e2v/task.py identity_mask_source). The source's shared FLAME folder is copied to
DATA_DIR/flame (hard links where possible): the model every identity is posed with.
Shuffling at write time is disabled: records are sorted by key "IIIII_TTTTTT" (identity
index, timestep), so the pipeline can address window starts directly from the
per-identity timesteps kept in `info.metadata`.

Usage:
    builder = TalkingHeads(data_dir=OUT)
    builder.download_and_prepare(file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=FOLDER_OF_IDENTITIES))
"""
from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from flashtalker_jax.data.vhap import SPLITS, identity_folders, read_vhap
from flashtalker_jax.errors import InputFileError

FLAME_SIZES = {"rotation": 3, "translation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6}


def _rgb_png_bytes(seq, index: int) -> bytes:
    """The frame's PNG bytes as stored when already 8-bit RGB PNG, else re-encoded."""
    from PIL import Image

    path = seq.image_paths[index]
    with Image.open(path) as image:
        stored_as_is = image.format == "PNG" and image.mode == "RGB"
    if stored_as_is and image.size == (seq.width, seq.height):
        return path.read_bytes()
    return _encode_png(seq.load_image(index))


class TalkingHeads(tfds.core.GeneratorBasedBuilder):
    """Talking-head frames with FLAME params, cameras and aligned audio (VHAP sources)."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {"1.0.0": "Frames, masks, FLAME params, cameras and per-frame audio.",
                     "1.1.0": "audio_margins: the neighbouring timesteps' audio of every frame.",
                     "1.2.0": "w2c, head_mask and per-identity head_mask_source metadata; "
                              "DATA_DIR/flame: what e2v pretraining (e2v/records.py) reads; "
                              "identities of different (sample_rate, fps) build (metadata 'rates'; "
                              "'sample_rate' and 'fps' are null then): e2v reads them, motion refuses."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Set download_config.manual_dir to a folder of VHAP-format identity folders "
        "(e.g. the output of `flashtalker data synth`).")

    def _info(self) -> tfds.core.DatasetInfo:
        tensor = tfds.features.Tensor
        features = {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
            "identity": tensor(shape=(), dtype=np.int32),
            "timestep": tensor(shape=(), dtype=np.int32),
            "K": tensor(shape=(3, 3), dtype=np.float32),
            "c2w": tensor(shape=(4, 4), dtype=np.float32),
            "w2c": tensor(shape=(4, 4), dtype=np.float32),
            # PNG bytes, not an Image: an identity without head masks stores b"" (no 0x0 PNG).
            "head_mask": tensor(shape=(), dtype=np.object_),
            "expr": tensor(shape=(None,), dtype=np.float32),
            "shape": tensor(shape=(None,), dtype=np.float32),
            "audio": tensor(shape=(None,), dtype=np.float32),
            "audio_margins": tensor(shape=(2, None), dtype=np.float32),
            **{k: tensor(shape=(n,), dtype=np.float32) for k, n in FLAME_SIZES.items()},
        }
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,
            description=__doc__.split("\n\n")[0],
        )

    def _split_generators(self, dl_manager):
        folders = identity_folders(dl_manager.manual_dir)
        sequences = [read_vhap(f) for f in folders]
        self._record_metadata(folders, sequences)
        heads = self.info.metadata["head_mask_source"]
        present = [s for s in SPLITS if any(len(seq.splits.get(s, ())) for seq in sequences)]
        return {split: self._generate_examples(sequences, heads, split) for split in present}

    def _record_metadata(self, folders, sequences) -> None:
        # Synthetic identities (25 fps) and tracked real clips (their video's rate) may share
        # a build: e2v pretraining reads frames alone. A window of audio needs one rate, so
        # the motion readers refuse a build whose scalar 'sample_rate' / 'fps' are null
        # (pipeline.one_rate).
        rates = [[int(s.sample_rate), float(s.fps)] for s in sequences]
        distinct = {tuple(r) for r in rates}
        sample_rate, fps = distinct.pop() if len(distinct) == 1 else (None, None)
        self.info.metadata.update({
            "identities": [f.name for f in folders],
            "head_mask_source": [_head_mask_source(f) for f in folders],
            "rates": rates, "sample_rate": sample_rate, "fps": fps,
            "timesteps": {split: [[int(t) for t in np.sort(s.timesteps[s.splits.get(split, [])])]
                                  for s in sequences] for split in SPLITS},
        })

    def _generate_examples(self, sequences, heads, split):
        for identity, (seq, head) in enumerate(zip(sequences, heads)):
            if seq.audio is None:
                raise InputFileError(seq.root, "identity has no audio.wav; pretraining needs audio")
            for index in seq.splits.get(split, np.zeros(0, int)):
                timestep = int(seq.timesteps[index])
                mask = seq.load_mask(index)[..., None]
                yield f"{identity:05d}_{timestep:06d}", {
                    "image": _rgb_png_bytes(seq, index),
                    "mask": _encode_png(mask),
                    "identity": identity, "timestep": timestep,
                    "K": seq.K[index].astype(np.float32), "c2w": seq.c2w[index].astype(np.float32),
                    "w2c": seq.w2c[index].astype(np.float32),
                    "head_mask": _encode_png(seq.load_head_mask(index)) if head == "head" else b"",
                    "shape": seq.shape.astype(np.float32),
                    "audio": seq.audio_for_frames(timestep, timestep + 1),
                    "audio_margins": _neighbour_audio(seq, timestep),
                    **{k: seq.flame[k][index] for k in (*FLAME_SIZES, "expr")},
                }


def _head_mask_source(folder: Path) -> str | None:
    """The mask e2v's task.mask_source="head" reads for this identity ("head": head_masks/,
    "fg": a data-synth folder, whose renders hold the head alone), None where neither."""
    from flashtalker_jax.e2v.task import identity_mask_source   # the rule itself, not a copy

    try:
        return identity_mask_source(folder, "head")
    except InputFileError:
        return None   # fine for motion pretraining; e2v/records.py refuses "head" for it


def _neighbour_audio(seq, timestep: int) -> np.ndarray:
    """(2, ~sample_rate / fps): the samples of timesteps t - 1 and t + 1, zeros outside the
    clip (what log-mel's zero padding sees there when it runs on the whole clip). When a
    frame is not a whole number of samples (16 kHz at 30 fps: 533 or 534) the shorter row
    gets one zero on its far side, away from frame t, where window_log_mel never reads."""
    after = seq.audio_for_frames(timestep + 1, timestep + 2)
    before = seq.audio_for_frames(timestep - 1, timestep) if timestep > 0 else np.zeros_like(after)
    n = max(len(before), len(after))
    return np.stack([np.pad(before, (n - len(before), 0)), np.pad(after, (0, n - len(after)))]).astype(np.float32)


def _encode_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array).save(buffer, "PNG")
    return buffer.getvalue()


def build(source: str | Path, data_dir: str | Path) -> tfds.core.DatasetBuilder:
    """Pack every identity under `source` into array_record files under `data_dir`, and copy
    the identities' shared FLAME folder `source`/flame (when there) to `data_dir`/flame."""
    builder = TalkingHeads(data_dir=str(data_dir))
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(source)))
    flame = Path(source) / "flame"
    if flame.is_dir():
        shutil.copytree(flame, Path(data_dir) / "flame", copy_function=_link_or_copy, dirs_exist_ok=True)
    return builder


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (a FLAME folder is ~150 MB: the build shares its source's bytes), or a
    copy where links cannot be made (another file system)."""
    if os.path.lexists(dst):
        os.remove(dst)   # a rebuild into the same folder
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dst)
