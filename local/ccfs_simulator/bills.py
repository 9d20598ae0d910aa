"""Bill ZIPs as CC-FS builds them (protocol §4) and the streaming writers used to send files.

Entries by default: ``{yyyyMMddHHmmssSSS}{3 digits}_call_{n}.csv`` / ``..._record_{n}.csv``, UTF-8,
one header row, RFC 4180 quoting (``csv`` module, CRLF line ends), a new numbered file every
``split_rows`` rows. :class:`BillStyle` writes the other forms §4 allows, so the client can be
tested against each: un-numbered ``_call.csv`` names (one file per kind), another letter case of
the extension, a BOM or GB18030, LF line ends, no header row or one in upper case with spaces, and
extra entries no client should take for bill data.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BillStyle", "ChunkedWriter", "stream_zip_of", "write_bill_zip"]

EXTRA_ENTRY_TEXT = "This file is not part of the bill data.\r\n"


@dataclass(frozen=True)
class BillStyle:
    """How entries are named and encoded (``SimulatorConfig`` fields of the same names)."""

    bill_entry_names: str = "numbered"  # "numbered": _call_{n}.csv; "plain": one _call.csv per kind
    csv_extension: str = ".csv"
    csv_encoding: str = "utf-8"  # "utf-8", "utf-8-sig" (with a BOM) or "gb18030"
    csv_line_ending: str = "\r\n"
    csv_header: str = "exact"  # "exact", "none" or "spaced-upper" (" CALL_ID ")
    bill_extra_entries: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, config: Any) -> BillStyle:
        return cls(
            bill_entry_names=config.bill_entry_names,
            csv_extension=config.csv_extension,
            csv_encoding=config.csv_encoding,
            csv_line_ending=config.csv_line_ending,
            csv_header=config.csv_header,
            bill_extra_entries=tuple(config.bill_extra_entries),
        )

    def header_row(self, header: Sequence[str]) -> list[str] | None:
        if self.csv_header == "none":
            return None
        if self.csv_header == "spaced-upper":
            return [f" {name.upper()} " for name in header]
        return list(header)


def _write_csv_parts(
    archive: zipfile.ZipFile,
    prefix: str,
    kind: str,
    header: Sequence[str],
    rows: list[dict[str, str]],
    split_rows: int,
    style: BillStyle,
) -> list[str]:
    names = []
    if style.bill_entry_names == "plain":  # the downloadBillFile page's form: one file, no number
        chunks, numbers = [rows], [""]
    else:
        chunks = [rows[i : i + split_rows] for i in range(0, len(rows), split_rows)] or [[]]
        numbers = [f"_{n}" for n in range(1, len(chunks) + 1)]
    header_row = style.header_row(header)
    for number, chunk in zip(numbers, chunks, strict=True):
        name = f"{prefix}_{kind}{number}{style.csv_extension}"
        with (
            archive.open(name, "w") as raw,
            io.TextIOWrapper(raw, encoding=style.csv_encoding, newline="") as text,
        ):
            if header_row is not None:
                csv.writer(text, lineterminator=style.csv_line_ending).writerow(header_row)
            writer = csv.DictWriter(
                text, fieldnames=list(header), extrasaction="raise", lineterminator=style.csv_line_ending
            )
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
    style: BillStyle | None = None,
) -> list[str]:
    """Write the ZIP to ``path``; return its entry names. ``cdr``/``index`` are (header, rows) or None."""
    style = style or BillStyle()
    prefix = generated_at.strftime("%Y%m%d%H%M%S") + f"{generated_at.microsecond // 1000:03d}" + random_digits
    names: list[str] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if cdr is not None:
            names += _write_csv_parts(archive, prefix, "call", cdr[0], cdr[1], split_rows, style)
        if index is not None:
            names += _write_csv_parts(archive, prefix, "record", index[0], index[1], split_rows, style)
        for extra in style.bill_extra_entries:
            archive.writestr(extra, EXTRA_ENTRY_TEXT.encode())
            names.append(extra)
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
