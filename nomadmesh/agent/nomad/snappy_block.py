"""Snappy's block format, as Nomad stores a dispatched job's Payload (Go's snappy.Encode), through
cramjam's snappy (raw = block format, not the framed stream format)."""
from __future__ import annotations

import cramjam


class SnappyError(ValueError):
    pass


def compress(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def decompress(data: bytes) -> bytes:
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as e:
        raise SnappyError(f"corrupt snappy block: {e}") from None
