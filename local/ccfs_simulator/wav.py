"""Deterministic G.711 A-law WAV files of any size, generated as a stream.

Layout (58-byte header): ``RIFF`` (size = file - 8) ``WAVE``; ``fmt `` (18 bytes: format tag 6
= A-law, 1 channel, 8000 Hz, 8000 bytes/s, block align 1, 8 bits, cbSize 0); ``fact`` (4 bytes:
sample count); ``data`` (all remaining bytes), so the file is exactly the requested size. A strictly valid RIFF
file has an even size (chunks are word-aligned); the synthetic data only uses even sizes. An odd
size (only when asked for one exactly, ``big_recordings``) gives an odd ``data`` chunk whose final
pad byte is omitted, as many real recorders do.

The samples are SHAKE-128 output keyed by the recording key and the block number: fast (~600 MB/s),
random-access and never held in memory beyond one 64 KiB block.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

__all__ = ["BLOCK", "HEADER_SIZE", "MIN_SIZE", "data_size", "wav_chunks", "wav_header", "wav_sha256"]

BLOCK = 64 * 1024
HEADER_SIZE = 58
MIN_SIZE = HEADER_SIZE + 2
_ALAW = 6
_RATE = 8000


def data_size(total: int) -> int:
    """Samples in a file of ``total`` bytes."""
    if total < MIN_SIZE:
        raise ValueError(f"a WAV file here is at least {MIN_SIZE} bytes")
    return total - HEADER_SIZE


def wav_header(total: int) -> bytes:
    samples = data_size(total)
    header = (
        b"RIFF"
        + struct.pack("<I", total - 8)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHHH", 18, _ALAW, 1, _RATE, _RATE, 1, 8, 0)
        + b"fact"
        + struct.pack("<II", 4, samples)
        + b"data"
        + struct.pack("<I", samples)
    )
    assert len(header) == HEADER_SIZE
    return header


def _block(key: bytes, number: int) -> bytes:
    return hashlib.shake_128(key + number.to_bytes(8, "big")).digest(BLOCK)


def wav_chunks(key: str, total: int) -> Iterator[bytes]:
    """The file as chunks of at most 64 KiB (the header first)."""
    samples = data_size(total)
    yield wav_header(total)
    raw_key = key.encode("utf-8") + b"\x00"
    full, rest = divmod(samples, BLOCK)
    for number in range(full):
        yield _block(raw_key, number)
    if rest:
        yield _block(raw_key, full)[:rest]


def wav_sha256(key: str, total: int) -> str:
    digest = hashlib.sha256()
    for chunk in wav_chunks(key, total):
        digest.update(chunk)
    return digest.hexdigest()
