"""The snappy block codec a dispatched job's Payload is stored with (Nomad's snappy.Encode)."""
from __future__ import annotations

import pytest

from nomadmesh.agent.nomad.snappy_block import SnappyError, compress, decompress


@pytest.mark.parametrize("size", [0, 1, 59, 60, 61, 255, 256, 257, 16 * 1024, 65536, 65537, 200_000])
def test_round_trip(size: int) -> None:
    data = bytes((i * 7 + size) % 251 for i in range(size))
    assert decompress(compress(data)) == data


def test_block_format_not_the_framed_stream() -> None:
    # uvarint length, then one literal tag ((len-1) << 2) and the bytes, as snappy's block format
    # defines (what Go's snappy.Encode writes; the framed format would start with a stream header)
    assert compress(b"hello") == bytes([5, 4 << 2]) + b"hello"


def test_copies_written_by_a_real_encoder_decode() -> None:
    # "a" then a 2-byte-offset copy of 19 bytes at offset 1: how an encoder writes a run
    assert decompress(bytes([20, 0]) + b"a" + bytes([(18 << 2) | 2, 1, 0])) == b"a" * 20
    # a 1-byte-offset copy (tag kind 1): 4 + 3 bytes at offset 3
    assert decompress(bytes([10, 2 << 2]) + b"abc" + bytes([(3 << 2) | 1, 3])) == b"abcabcabca"


@pytest.mark.parametrize("bad", [b"", b"\x80", bytes([5, 4 << 2]) + b"hel", bytes([3, (2 << 2) | 2, 9, 0]),
                                 bytes([9, 0]) + b"a"])
def test_corrupt_input_is_refused(bad: bytes) -> None:
    with pytest.raises(SnappyError):
        decompress(bad)
