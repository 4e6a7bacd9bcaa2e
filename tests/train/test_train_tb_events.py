"""The hand-written TensorBoard event encoder against tensorboardX's protobuf classes and
CRC-32C (an independent implementation of the same format; parsing is exact, and scalar
values are float32 in the format, hence the float32 comparison)."""
from __future__ import annotations

import struct

import numpy as np
import tensorboardX.crc32c as tbx_crc  # the reference CRC-32C
import tensorboardX.proto.event_pb2 as tbx_event  # the reference parser

from flashtalker_jax.train.tb_events import ScalarEventWriter, crc32c


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    data, records, pos = path.read_bytes(), [], 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,), (length_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[pos + 8:pos + 12])
        payload = data[pos + 12:pos + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert length_crc == masked(tbx_crc.crc32c(header))
        assert payload_crc == masked(tbx_crc.crc32c(payload))
        records.append(tbx_event.Event.FromString(payload))
        pos += 16 + length
    return records


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C catalogue check value
    assert crc32c(bytes(range(256)) * 3) == tbx_crc.crc32c(bytes(range(256)) * 3)


def test_scalar_events_parse_with_reference(tmp_path):
    writer = ScalarEventWriter(tmp_path)
    writer.add_scalars(7, {"train/loss": 0.125, "train/lr": 3e-4})
    writer.add_scalars(2**40, {"train/loss": -1.5})
    writer.close()
    first, second, third = read_records(writer.path)
    assert first.file_version == "brain.Event:2"
    assert second.step == 7 and third.step == 2**40
    assert [(v.tag, v.simple_value) for v in second.summary.value] == [
        ("train/loss", 0.125), ("train/lr", np.float32(3e-4))]
    assert third.summary.value[0].simple_value == -1.5
