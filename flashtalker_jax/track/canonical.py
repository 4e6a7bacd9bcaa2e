"""MediaPipe's canonical face mesh, read from the FaceLandmarker bundle itself.

`face_landmarker.task` is a zip; its `geometry_pipeline_metadata_landmarks.binarypb` is a
protobuf (GeometryPipelineMetadata) whose field 1 is the canonical Mesh3d: field 3 holds
the vertex buffer (468 x (x, y, z, u, v) floats, centimetres, +y up, +z towards the
viewer, -x the subject's right) and field 4 the 898 triangles. Reading it here means the
tracker needs no separately licensed landmark file: the geometry comes with the detector.

The protobuf is decoded by hand (a few dozen lines of wire format) so the reader does not
depend on MediaPipe's generated message classes, which are not a public API.
"""
from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from flashtalker_jax.errors import ModelFileError

GEOMETRY_ENTRY = "geometry_pipeline_metadata_landmarks.binarypb"
N_CANONICAL = 468  # face mesh vertices; the 10 iris points (468-477) are not in the mesh
N_TRIANGLES = 898
CM_PER_M = 100.0
FIX = "pass the face_landmarker.task bundle of MediaPipe FaceLandmarker (--landmarker)"


@dataclasses.dataclass(frozen=True)
class CanonicalMesh:
    """vertices (468, 3) metres (FLAME's axes: +y up, +z forward, +x subject's left),
    uv (468, 2), faces (898, 3) int64."""
    vertices: np.ndarray
    uv: np.ndarray
    faces: np.ndarray


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one protobuf message (no nesting)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("message ends inside a field")
        yield number, wire, value


def _packed_varints(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        out.append(value)
    return out


def _decode_mesh(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    floats, indices = [], []
    for number, wire, value in _fields(buf):
        if number == 3:
            floats += (list(struct.unpack(f"<{len(value) // 4}f", value)) if wire == 2
                       else [struct.unpack("<f", value)[0]])
        elif number == 4:
            indices += _packed_varints(value) if wire == 2 else [value]
    return np.asarray(floats, np.float64), np.asarray(indices, np.int64)


def load_canonical_mesh(task_path: str | os.PathLike) -> CanonicalMesh:
    """The canonical face mesh inside a face_landmarker.task bundle (ModelFileError if absent)."""
    path = Path(task_path)
    if not path.is_file():
        raise ModelFileError(path, "MediaPipe face landmarker bundle not found", FIX)
    try:
        with zipfile.ZipFile(path) as bundle:
            payload = bundle.read(GEOMETRY_ENTRY)
        mesh = next(v for n, w, v in _fields(payload) if n == 1 and w == 2)
        floats, indices = _decode_mesh(mesh)
    except (zipfile.BadZipFile, KeyError, StopIteration, ValueError, IndexError, struct.error) as err:
        raise ModelFileError(path, f"no readable canonical face mesh ({GEOMETRY_ENTRY}: {err})", FIX) from err
    if floats.size != N_CANONICAL * 5 or indices.size != N_TRIANGLES * 3:
        raise ModelFileError(path, f"canonical mesh has {floats.size} floats / {indices.size} indices, "
                                   f"expected {N_CANONICAL * 5} / {N_TRIANGLES * 3}", FIX)
    table = floats.reshape(N_CANONICAL, 5)
    return CanonicalMesh(vertices=table[:, :3] / CM_PER_M, uv=table[:, 3:],
                         faces=indices.reshape(N_TRIANGLES, 3))
