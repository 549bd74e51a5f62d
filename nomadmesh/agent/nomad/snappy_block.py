"""Snappy's block format, as Nomad stores a dispatched job's Payload (snappy.Encode). Pure.

compress() writes literals only, which every snappy decoder reads (it is valid, just not smaller: a
payload is at most 16 KiB); decompress() reads any block, copies included, so a Payload written by
Nomad itself decodes too. No dependency for 40 lines of a stable, documented format.
"""
from __future__ import annotations


class SnappyError(ValueError):
    pass


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def compress(data: bytes) -> bytes:
    out = bytearray(_uvarint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def decompress(block: bytes) -> bytes:
    length, shift, i = 0, 0, 0
    while True:
        if i >= len(block) or shift > 63:
            raise SnappyError("snappy: corrupt input")
        byte = block[i]
        i += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    out = bytearray()
    while i < len(block):
        tag = block[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                width = n - 59
                n = int.from_bytes(block[i:i + width], "little")
                i += width
            n += 1
            if i + n > len(block):
                raise SnappyError("snappy: corrupt input")
            out += block[i:i + n]
            i += n
            continue
        if kind == 1:
            n, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | block[i]
            i += 1
        else:
            width = 2 if kind == 2 else 4
            n, offset = 1 + (tag >> 2), int.from_bytes(block[i:i + width], "little")
            i += width
        if offset == 0 or offset > len(out):
            raise SnappyError("snappy: corrupt input")
        for _ in range(n):  # byte by byte: a copy may overlap what it writes
            out.append(out[-offset])
    if len(out) != length:
        raise SnappyError("snappy: corrupt input")
    return bytes(out)
