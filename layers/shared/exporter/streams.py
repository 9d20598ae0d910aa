"""A read-only file object over a byte iterator that hashes and counts what passes through.

boto3's ``upload_fileobj`` wants something with ``read(size)``; an HTTP body arrives as an iterator
of chunks. :class:`HashingReader` joins the two without ever holding more than one requested part
(plus one chunk) in memory, and computes the SHA-256 and the byte count on the way, so the upload
can be verified without reading the object back.

``read(size)`` blocks until ``size`` bytes or the end of the body: the transfer manager treats a
short read as the end of a part, and S3 refuses parts under 5 MiB except the last.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["HashingReader", "file_chunks"]

DEFAULT_CHUNK = 1024 * 1024


class HashingReader(io.RawIOBase):
    """Non-seekable, readable stream over ``chunks``; ``sha256`` / ``bytes_read`` after reading."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.exhausted = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of every byte handed out so far (the whole body once ``exhausted``)."""
        return self._hash.hexdigest()

    def _next_chunk(self) -> bytes | None:
        for chunk in self._chunks:
            if chunk:
                return bytes(chunk)
        self.exhausted = True
        return None

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed HashingReader")
        want = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        have = 0
        if self._pending:
            parts.append(self._pending)
            have = len(self._pending)
            self._pending = b""
        while (want < 0 or have < want) and not self.exhausted:
            chunk = self._next_chunk()
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if want >= 0 and len(data) > want:
            data, self._pending = data[:want], data[want:]
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


def file_chunks(fileobj: BinaryIO, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """Chunks of an open binary file from its current position (for staging a downloaded temp file)."""
    while chunk := fileobj.read(chunk_size):
        yield chunk
