"""Build bill ZIPs for tests: CSV bytes written with the csv module, entries with zipfile, and
byte-level patches for damaged archives (CRC, sizes, entry counts)."""

from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

PREFIX = "20260102030405678123"  # yyyyMMddHHmmssSSS + 3 digits


def csv_bytes(
    rows: Iterable[Sequence[str]],
    header: Sequence[str] | None = None,
    *,
    bom: bool = False,
    newline: str = "\r\n",
    encoding: str = "utf-8",
) -> bytes:
    """RFC 4180 CSV (minimal quoting) encoded as ``encoding`` (UTF-8), optionally with a UTF-8 BOM."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode(encoding)
    return b"\xef\xbb\xbf" + data if bom else data


def write_zip(
    path: Path,
    entries: Iterable[tuple[str, bytes]] | dict[str, bytes],
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write ``entries`` (name → bytes) as a ZIP. Names are used verbatim (no sanitising)."""
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 2, 3, 4, 6))
            info.compress_type = compression
            zf.writestr(info, data)
    return path


def entry_name(kind: str, number: int, prefix: str = PREFIX) -> str:
    return f"{prefix}_{kind}_{number}.csv"


def local_header_offset(data: bytes, name: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.getinfo(name).header_offset


def data_offset(data: bytes, name: str) -> int:
    """Where an entry's (compressed) data starts."""
    off = local_header_offset(data, name)
    name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
    return off + 30 + name_len + extra_len


def central_header_offset(data: bytes, name: str) -> int:
    encoded = name.encode("utf-8")
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        (name_len,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46 : pos + 46 + name_len] == encoded:
            return pos
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise KeyError(name)


def patch_sizes(data: bytes, name: str, *, file_size: int | None = None, crc: int | None = None) -> bytes:
    """Rewrite an entry's declared uncompressed size and/or CRC in both its headers."""
    out = bytearray(data)
    for off, crc_at, size_at in (
        (local_header_offset(data, name), 14, 22),
        (central_header_offset(data, name), 16, 24),
    ):
        if file_size is not None:
            struct.pack_into("<I", out, off + size_at, file_size)
        if crc is not None:
            struct.pack_into("<I", out, off + crc_at, crc)
    return bytes(out)


def patch_entry_count(data: bytes, count: int) -> bytes:
    """Rewrite the entry counts of the end-of-central-directory record."""
    out = bytearray(data)
    pos = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", out, pos + 8, count, count)
    return bytes(out)


def patch_zip64_entry_count(data: bytes, count: int) -> bytes:
    """Rewrite the entry counts of the ZIP64 end-of-central-directory record."""
    out = bytearray(data)
    pos = data.rfind(b"PK\x06\x06")
    struct.pack_into("<QQ", out, pos + 24, count, count)
    return bytes(out)


class Unseekable(io.RawIOBase):
    """A write-only stream without seek/tell: zipfile then writes data descriptors (flag bit 3), as
    streaming ZIP writers such as Java's ZipOutputStream do."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)
