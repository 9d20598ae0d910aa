"""Bill ZIPs as CC-FS builds them (protocol §4) and the streaming writers used to send files.

Entries: ``{yyyyMMddHHmmssSSS}{3 digits}_call_{n}.csv`` / ``..._record_{n}.csv``, UTF-8, one header
row, RFC 4180 quoting (``csv`` module, CRLF line ends), a new numbered file every ``split_rows`` rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

__all__ = ["ChunkedWriter", "stream_zip_of", "write_bill_zip"]


def _write_csv_parts(
    archive: zipfile.ZipFile,
    prefix: str,
    kind: str,
    header: Sequence[str],
    rows: list[dict[str, str]],
    split_rows: int,
) -> list[str]:
    names = []
    chunks = [rows[i : i + split_rows] for i in range(0, len(rows), split_rows)] or [[]]
    for number, chunk in enumerate(chunks, start=1):
        name = f"{prefix}_{kind}_{number}.csv"
        with (
            archive.open(name, "w") as raw,
            io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
        ):
            writer = csv.DictWriter(text, fieldnames=list(header), extrasaction="raise")
            writer.writeheader()
            writer.writerows(chunk)
        names.append(name)
    return names


def write_bill_zip(
    path: Path,
    *,
    generated_at: datetime,
    random_digits: str,
    cdr: tuple[Sequence[str], list[dict[str, str]]] | None,
    index: tuple[Sequence[str], list[dict[str, str]]] | None,
    split_rows: int,
) -> list[str]:
    """Write the ZIP to ``path``; return its entry names. ``cdr``/``index`` are (header, rows) or None."""
    prefix = generated_at.strftime("%Y%m%d%H%M%S") + f"{generated_at.microsecond // 1000:03d}" + random_digits
    names: list[str] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if cdr is not None:
            names += _write_csv_parts(archive, prefix, "call", cdr[0], cdr[1], split_rows)
        if index is not None:
            names += _write_csv_parts(archive, prefix, "record", index[0], index[1], split_rows)
    return names


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ChunkedWriter(io.RawIOBase):
    """A write-only file object that sends HTTP/1.1 chunked transfer encoding to ``out``.

    Small writes are gathered into chunks of ``chunk_size``; ``close()`` sends the final chunk.
    ``limit`` (the reset fault) raises ``ConnectionAbortedError`` once that many body bytes went out.
    """

    def __init__(self, out: _Writable, chunk_size: int = 64 * 1024) -> None:
        super().__init__()
        self._out = out
        self._buffer = bytearray()
        self._chunk_size = chunk_size
        self.sent = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:
            self._emit(bytes(self._buffer[: self._chunk_size]))
            del self._buffer[: self._chunk_size]
        return len(data)

    def _emit(self, data: bytes) -> None:
        self._out.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.sent += len(data)

    def finish(self) -> None:
        if self._buffer:
            self._emit(bytes(self._buffer))
            self._buffer.clear()
        self._out.write(b"0\r\n\r\n")


def stream_zip_of(members: Iterable[tuple[str, int, Iterable[bytes]]], out: ChunkedWriter) -> None:
    """Write a ZIP (stored, data descriptors) of ``(name, size, chunks)`` members to ``out``."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, size, chunks in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.file_size = size
            with archive.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as member:
                for chunk in chunks:
                    member.write(chunk)
