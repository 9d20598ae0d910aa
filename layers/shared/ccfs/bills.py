"""Read a downloaded CC-FS bill ZIP: CDR and recording-index CSV files (shared/ccfs-protocol.md §4).

The ZIP comes from another party's server, so it is handled as untrusted input:

* The central directory is checked when the file is opened, before any row is read: entry names
  (absolute paths, ``..``, backslashes, drive letters, control characters and duplicates are
  refused: :class:`UnsafeEntryName`), the number of entries, the total declared uncompressed size
  and the per-entry compression ratio (:class:`ZipBomb`), compression method and encryption
  (:class:`CorruptBill`).
* Entries are streamed (``zipfile.open`` → byte counter → ``TextIOWrapper`` → ``csv``); nothing
  reads a whole entry into memory. The byte counter enforces the size limits again on what actually
  comes out of the decompressor, and a physical line or a record longer than the row limits is
  skipped as a bad row, so memory stays bounded whatever the content.
* Rows that do not fit (wrong field count, a field too long, a NUL, a CSV syntax error) are skipped
  and reported in :attr:`BillFile.bad_rows` with the entry name and line number, never the content:
  bill rows carry phone numbers. The report is capped (:attr:`BillLimits.max_listed_bad_rows`);
  :attr:`BillFile.bad_row_count` counts them all. A record with more commas than the row limits
  allow is skipped before ``csv`` splits it, so a line of millions of tiny fields stays cheap.

**Read the whole entry before trusting it.** A ZIP entry's CRC can only be checked once its last
byte has been read, so :class:`CorruptBill` (or :class:`ZipBomb`) may be raised *after* rows of
that entry were yielded. Callers must treat an export as complete only when iteration finished
without an exception (write to a staging location, then commit).

**Entry names** (§4: the vendor's two pages disagree, so both are read): ``…_call.csv`` /
``…_record.csv`` (entry number 0) and ``…_call_{n}.csv`` / ``…_record_{n}.csv``, the ``.csv``
extension in any letter case. Anything else is listed in :attr:`BillFile.unexpected_entries`, and a
classified entry without a single record after its header in :attr:`BillFile.empty_entries`: a
naming or format change at CC-FS must show up, never become a silently empty export.

**Encoding, per entry**: UTF-8 (with or without a BOM) when the whole entry decodes as UTF-8, else
GB18030 (a superset of GBK, a Chinese system's default). The whole entry is checked first, in a
streamed pass, because a GBK file's first block is often plain ASCII (phone numbers, times) and a
short run of GBK bytes can even be valid UTF-8: deciding on the first block alone would fail a
genuine bill halfway through. The pass inflates the entry once more (a few per cent of the time
the CSV parsing takes) and, as a side effect, checks its CRC before any row is yielded.

No AWS imports: this module is the vendor format only.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS

__all__ = [
    "BadRow",
    "BillError",
    "BillFile",
    "BillLimits",
    "BillRow",
    "CorruptBill",
    "UnsafeEntryName",
    "ZipBomb",
]

Kind = Literal["cdr", "record"]
BillRow = tuple[str, int, dict[str, str]]
"""``(entry name, line number where the row starts (1-based), {column: value})``."""

# ``_call.csv`` (downloadBillFile page, number 0) or ``_call_{n}.csv`` (CSV definition page); only the
# extension's letter case varies ("Any letter case of the extension"), ``_CALL_`` is not documented.
_CDR_RE = re.compile(r"_call(?:_(\d+))?\.[Cc][Ss][Vv]\Z", re.ASCII)
_RECORD_RE = re.compile(r"_record(?:_(\d+))?\.[Cc][Ss][Vv]\Z", re.ASCII)
_UTF8 = "utf-8-sig"  # drops a BOM when there is one
_FALLBACK = "gb18030"
_DRIVE_RE = re.compile(r"\A[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_RATIO_FLOOR = 1024 * 1024  # the ratio limit applies to entries larger than this (uncompressed)
_SUPPORTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_READ_CHUNK = 64 * 1024

# What zipfile (and the decompressors under it) raise on a damaged or hostile archive. Real I/O
# errors (OSError) land here too: the file was opened successfully before, so they are reported as
# an unreadable bill with the underlying error's class name.
_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    zlib.error,
    NotImplementedError,
    OverflowError,
    RuntimeError,
    IndexError,
    KeyError,
)


@dataclass(frozen=True)
class BillLimits:
    """Bounds on what a bill ZIP may make us do. Raise them only for a bill known to be genuine."""

    max_total_uncompressed: int = 8 * 1024**3  # bytes, sum over all entries
    max_ratio: float = 200.0  # per entry, uncompressed / compressed, for entries over 1 MiB
    max_entries: int = 10_000
    max_field_chars: int = 32_768  # a longer field makes its row malformed
    max_row_fields: int = 256
    max_listed_bad_rows: int = 10_000  # kept in BillFile.bad_rows; BillFile.bad_row_count stays exact

    def __post_init__(self) -> None:
        for name in (
            "max_total_uncompressed",
            "max_ratio",
            "max_entries",
            "max_field_chars",
            "max_row_fields",
            "max_listed_bad_rows",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"BillLimits.{name} must be positive")

    @property
    def max_record_chars(self) -> int:
        """The longest a CSV record may be: every field at its maximum, quoted, plus separators."""
        return self.max_row_fields * (self.max_field_chars + 3) + 2

    @property
    def max_record_commas(self) -> int:
        """The most commas a CSV record may hold: a separator per field plus one field made only of
        commas. Checked before ``csv`` splits the record, as a record of millions of one-character
        fields (a few MiB of text) would otherwise become millions of objects."""
        return self.max_row_fields + self.max_field_chars


@dataclass(frozen=True)
class BadRow:
    """A skipped row. ``reason`` describes the problem, never the row's content (personal data)."""

    file: str
    line: int
    reason: str


class BillError(Exception):
    """The bill ZIP cannot be read safely; the message says what is wrong with it."""


class UnsafeEntryName(BillError):
    """An entry name is a path that could escape a directory, or is ambiguous."""


class ZipBomb(BillError):
    """Declared or actual sizes exceed :class:`BillLimits`."""


class CorruptBill(BillError):
    """Not a ZIP, truncated, a failed CRC check, an unsupported method, or text that is neither
    UTF-8 nor GB18030."""


def _show(name: str, limit: int = 80) -> str:
    """An entry name safe to put in a message: ``repr`` (escapes control characters), truncated."""
    return repr(name[:limit] + "…") if len(name) > limit else repr(name)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    # zipfile cuts a name at its first NUL; the original keeps it.
    raw = info.orig_filename
    name = info.filename
    if not name:
        return "an empty name"
    if "\x00" in raw or _CONTROL_RE.search(raw):
        return "control characters in its name"
    if "\\" in raw:
        return "a backslash in its name"
    if raw.startswith("/"):
        return "an absolute path"
    if _DRIVE_RE.match(raw):
        return "a drive letter"
    if ".." in raw.split("/"):
        return "a '..' path component"
    return None


def _declared_entry_count(fp: IO[bytes]) -> int | None:
    """The entry count the end-of-central-directory record declares, read before ``zipfile`` builds
    one object per entry (so a ZIP declaring millions of entries is refused cheaply). ``None`` when
    it cannot be found: ``zipfile`` then reports the archive as it sees it."""
    try:
        size = fp.seek(0, os.SEEK_END)
        tail_len = min(size, 22 + 0xFFFF)
        fp.seek(size - tail_len)
        tail = fp.read(tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or len(tail) - pos < 22:
            return None
        (count,) = struct.unpack_from("<H", tail, pos + 10)
        if count != 0xFFFF:
            return int(count)
        # ZIP64: the locator sits just before the EOCD record and points at the ZIP64 EOCD record.
        if pos < 20 or tail[pos - 20 : pos - 16] != b"PK\x06\x07":
            return None
        (offset,) = struct.unpack_from("<Q", tail, pos - 20 + 8)
        if offset > size - 56:
            return None
        fp.seek(offset)
        record = fp.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        (count64,) = struct.unpack_from("<Q", record, 32)
        return int(count64)
    except (OSError, ValueError, OverflowError, struct.error):
        return None
    finally:
        with contextlib.suppress(OSError, ValueError):
            fp.seek(0)


class _Budget:
    """Counts bytes actually decompressed, per entry (a re-read is not counted twice) and in total."""

    def __init__(self, limits: BillLimits) -> None:
        self.limit = limits.max_total_uncompressed
        self.total = 0
        self.seen: dict[str, int] = {}

    def reached(self, entry: str, count: int) -> None:
        previous = self.seen.get(entry, 0)
        if count > previous:
            self.seen[entry] = count
            self.total += count - previous
            if self.total > self.limit:
                raise ZipBomb(
                    f"bill ZIP inflates to more than {self.limit} bytes in total while reading entry "
                    f"{_show(entry)}: refusing it as a possible ZIP bomb "
                    "(raise BillLimits.max_total_uncompressed only for a bill known to be genuine)"
                )


class _GuardedEntry(io.RawIOBase):
    """A raw byte stream over one ZIP entry that counts what the decompressor really produces and
    turns zipfile's low-level errors into :class:`BillError`."""

    def __init__(self, source: IO[bytes], info: zipfile.ZipInfo, budget: _Budget) -> None:
        super().__init__()
        self._source = source
        self._name = info.filename
        self._declared = info.file_size
        self._budget = budget
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:
            data = self._source.read1(len(buffer))  # type: ignore[attr-defined]
        except zipfile.BadZipFile as exc:
            if "CRC" in str(exc):
                raise CorruptBill(
                    f"bill ZIP entry {_show(self._name)} failed its CRC check: "
                    "the file is corrupt or was truncated in transit"
                ) from None
            raise CorruptBill(f"bill ZIP entry {_show(self._name)} is corrupt ({_describe(exc)})") from None
        except EOFError:
            raise CorruptBill(
                f"bill ZIP entry {_show(self._name)} ends before its compressed data does: "
                "the file is truncated or corrupt"
            ) from None
        except _ZIP_ERRORS as exc:
            raise CorruptBill(
                f"bill ZIP entry {_show(self._name)} cannot be decompressed ({_describe(exc)}): the file is corrupt"
            ) from None
        n = len(data)
        self._count += n
        if self._count > self._declared:
            raise ZipBomb(
                f"bill ZIP entry {_show(self._name)} inflates beyond its declared size of "
                f"{self._declared} bytes: refusing it as a possible ZIP bomb"
            )
        self._budget.reached(self._name, self._count)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._source.close()
            finally:
                super().close()


class _RowTooLong(Exception):
    """Raised by :class:`_Lines` when a record grows past the row limits (message: the reason)."""


class _Lines:
    """Physical lines for ``csv.reader``: counts them, bounds their length and the length of the
    record being assembled, and reports undecodable text as :class:`CorruptBill`."""

    def __init__(self, text: io.TextIOWrapper, entry: str, max_chars: int, max_commas: int) -> None:
        self._text = text
        self._entry = entry
        self._encoding = text.encoding
        self._max = max_chars
        self._max_commas = max_commas
        self.line = 0  # physical lines consumed so far
        self.record_chars = 0  # characters handed to csv for the record being parsed
        self.record_commas = 0  # commas among them (an upper bound of the fields csv will make)

    def __iter__(self) -> Iterator[str]:
        return self

    def _readline(self, limit: int) -> str:
        try:
            return self._text.readline(limit)
        except UnicodeDecodeError as exc:
            what = "UTF-8" if self._encoding == _UTF8 else "UTF-8 and not valid GB18030 either"
            raise CorruptBill(
                f"bill ZIP entry {_show(self._entry)} is not valid {what} ({exc.reason}; found while "
                f"reading line {self.line + 1}, the bad byte is there or a little after it)"
            ) from None

    def __next__(self) -> str:
        chunk = self._readline(self._max + 1)
        if not chunk:
            raise StopIteration
        self.line += 1
        self.record_chars += len(chunk)
        if len(chunk) > self._max and not chunk.endswith(("\n", "\r")):
            # Drop the rest of this physical line without holding it in memory.
            while chunk and not chunk.endswith(("\n", "\r")):
                chunk = self._readline(_READ_CHUNK)
            raise _RowTooLong(f"row is longer than {self._max} characters")
        if self.record_chars > self._max:
            raise _RowTooLong(f"row is longer than {self._max} characters")
        self.record_commas += chunk.count(",")
        if self.record_commas > self._max_commas:
            raise _RowTooLong(f"row has more than {self._max_commas} commas")
        return chunk


@dataclass
class _Entry:
    info: zipfile.ZipInfo
    kind: Kind
    number: int  # 0 for a plain ``…_call.csv`` name
    header: list[str] | None = None  # column names once known
    encoding: str | None = None  # once known: _UTF8 or _FALLBACK


class BillFile:
    """A bill ZIP opened for reading. Use as a context manager.

    Opening checks the whole central directory and raises :class:`BillError` before any row is
    read. Iterating yields ``(entry name, line, row)`` and fills :attr:`bad_rows`; see the module
    docstring for why an export is complete only when iteration ends without an exception.
    ``OSError`` from opening ``path`` itself (missing file, permissions) is not caught.
    """

    def __init__(self, path: str | os.PathLike[str], limits: BillLimits = BillLimits()) -> None:
        self.limits = limits
        self.cdr_files: list[str] = []
        self.record_files: list[str] = []
        self.unexpected_entries: list[str] = []  # entries that are neither CDR nor recording index
        self.empty_entries: list[str] = []  # classified entries read to the end without one record
        self.bad_rows: list[BadRow] = []  # the first limits.max_listed_bad_rows of them
        self._bad_counts: dict[str, int] = {}  # entry name -> bad rows, all of them
        self._entries: dict[str, _Entry] = {}
        self._budget = _Budget(limits)
        self._fp: IO[bytes] = open(path, "rb")  # noqa: SIM115 (owned, closed by close())
        self._zip: zipfile.ZipFile | None = None
        try:
            self._zip = self._open_zip()
            self._check_central_directory(self._zip.infolist())
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def _open_zip(self) -> zipfile.ZipFile:
        declared = _declared_entry_count(self._fp)
        if declared is not None and declared > self.limits.max_entries:
            raise self._too_many(declared)
        try:
            return zipfile.ZipFile(self._fp)
        except zipfile.BadZipFile as exc:
            raise CorruptBill(
                f"the bill is not a readable ZIP file ({_describe(exc)}): it is truncated, corrupt or not a ZIP at all"
            ) from None
        except _ZIP_ERRORS as exc:
            raise CorruptBill(
                f"the bill ZIP's central directory cannot be read ({_describe(exc)}): the file is corrupt"
            ) from None

    def _too_many(self, count: int) -> ZipBomb:
        return ZipBomb(
            f"bill ZIP holds {count} entries, more than the limit of {self.limits.max_entries}: "
            "refusing it as a possible ZIP bomb (raise BillLimits.max_entries only for a bill known "
            "to be genuine)"
        )

    def _check_central_directory(self, infos: list[zipfile.ZipInfo]) -> None:
        limits = self.limits
        if len(infos) > limits.max_entries:
            raise self._too_many(len(infos))
        seen: set[str] = set()
        for info in infos:
            reason = _unsafe_reason(info)
            if reason:
                raise UnsafeEntryName(
                    f"bill ZIP entry {_show(info.orig_filename)} has {reason}: refusing the whole bill "
                    "(a bill from CC-FS holds only flat *_call[_N].csv / *_record[_N].csv names)"
                )
            if info.filename in seen:
                raise UnsafeEntryName(
                    f"bill ZIP holds more than one entry named {_show(info.filename)}: refusing an ambiguous archive"
                )
            seen.add(info.filename)

        total = 0
        for info in infos:
            total += info.file_size
            if total > limits.max_total_uncompressed:
                raise ZipBomb(
                    f"bill ZIP declares more than {limits.max_total_uncompressed} bytes uncompressed "
                    "in total: refusing it as a possible ZIP bomb "
                    "(raise BillLimits.max_total_uncompressed only for a bill known to be genuine)"
                )
            if info.file_size > _RATIO_FLOOR:
                ratio = info.file_size / info.compress_size if info.compress_size else float("inf")
                if ratio > limits.max_ratio:
                    raise ZipBomb(
                        f"bill ZIP entry {_show(info.filename)} declares {info.file_size} bytes from "
                        f"{info.compress_size} compressed (ratio {ratio:.0f}, limit {limits.max_ratio:g}): "
                        "refusing it as a possible ZIP bomb "
                        "(raise BillLimits.max_ratio only for a bill known to be genuine)"
                    )

        for info in infos:
            kind, number = self._classify(info.filename)
            if kind is None:
                self.unexpected_entries.append(info.filename)
                continue
            self._check_readable(info)
            self._entries[info.filename] = _Entry(info, kind, number)
        ordered = sorted(self._entries.values(), key=lambda e: (e.number, e.info.filename))
        self.cdr_files = [e.info.filename for e in ordered if e.kind == "cdr"]
        self.record_files = [e.info.filename for e in ordered if e.kind == "record"]

    @staticmethod
    def _classify(name: str) -> tuple[Kind | None, int]:
        if name.endswith("/"):
            return None, 0
        if match := _CDR_RE.search(name):
            return "cdr", int(match[1] or 0)
        if match := _RECORD_RE.search(name):
            return "record", int(match[1] or 0)
        return None, 0

    @staticmethod
    def _check_readable(info: zipfile.ZipInfo) -> None:
        if info.flag_bits & 0x1:
            raise CorruptBill(
                f"bill ZIP entry {_show(info.filename)} is encrypted: CC-FS bills are not, "
                "so the file is not a genuine bill or is corrupt"
            )
        if info.compress_type not in _SUPPORTED_METHODS:
            raise CorruptBill(
                f"bill ZIP entry {_show(info.filename)} uses compression method {info.compress_type}; "
                "only stored and deflate are read (CC-FS uses deflate): the file is corrupt or not a "
                "genuine bill"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CorruptBill(
                f"bill ZIP entry {_show(info.filename)} is stored uncompressed but declares different "
                "compressed and uncompressed sizes: the file is corrupt"
            )

    # ------------------------------------------------------------------ reading

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{_show(name)} is not a CDR or recording-index entry of this bill") from None

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            raise ValueError("BillFile is closed")
        return self._zip

    def _open_raw(self, entry: _Entry) -> _GuardedEntry:
        archive = self._zipfile()
        try:
            source = archive.open(entry.info)
        except zipfile.BadZipFile as exc:
            if "Overlapped" in str(exc):
                raise ZipBomb(
                    f"bill ZIP entry {_show(entry.info.filename)} overlaps another entry: refusing it "
                    "as a possible ZIP bomb"
                ) from None
            raise CorruptBill(
                f"bill ZIP entry {_show(entry.info.filename)} cannot be opened ({_describe(exc)}): the file is corrupt"
            ) from None
        except _ZIP_ERRORS as exc:
            raise CorruptBill(
                f"bill ZIP entry {_show(entry.info.filename)} cannot be opened ({_describe(exc)}): the file is corrupt"
            ) from None
        return _GuardedEntry(source, entry.info, self._budget)

    def _encoding(self, entry: _Entry) -> str:
        """UTF-8 when the whole entry decodes as UTF-8, else GB18030 (see the module docstring)."""
        if entry.encoding is None:
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            encoding = _UTF8
            with io.BufferedReader(self._open_raw(entry), _READ_CHUNK) as raw:
                try:
                    while chunk := raw.read1(_READ_CHUNK):
                        decoder.decode(chunk)  # keeps a multibyte sequence split between chunks
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    encoding = _FALLBACK
            entry.encoding = encoding
        return entry.encoding

    def _open_text(self, entry: _Entry) -> io.TextIOWrapper:
        encoding = self._encoding(entry)
        raw = self._open_raw(entry)
        return io.TextIOWrapper(io.BufferedReader(raw, _READ_CHUNK), encoding=encoding, errors="strict", newline="")

    def encoding(self, entry: str) -> str:
        """The encoding ``entry`` is read with: ``"utf-8-sig"`` (UTF-8, a BOM dropped) or ``"gb18030"``.
        Reads the entry once if that was not done yet."""
        return self._encoding(self._entry(entry))

    def _documented(self, entry: _Entry) -> tuple[str, ...]:
        return CDR_COLUMNS if entry.kind == "cdr" else RECORD_COLUMNS

    def _header_names(self, entry: _Entry, row: list[str]) -> list[str] | None:
        """The column names if ``row`` is the documented header (possibly with extra names)."""
        documented = self._documented(entry)
        if len(row) < len(documented):
            return None
        if [f.strip().lower() for f in row[: len(documented)]] != list(documented):
            return None
        names = list(documented)
        for position, given in enumerate(row[len(documented) :], start=len(documented) + 1):
            name = given.strip()
            # An empty or repeated name would make one column overwrite another: name it by position.
            names.append(name if name and name not in names else f"extra_{position}")
        return names

    def _positional(self, entry: _Entry, width: int) -> list[str]:
        documented = self._documented(entry)
        return list(documented) + [f"extra_{i}" for i in range(len(documented) + 1, width + 1)]

    def _row_problem(self, row: list[str]) -> str | None:
        limits = self.limits
        if len(row) > limits.max_row_fields:
            return f"has {len(row)} fields, more than the limit of {limits.max_row_fields}"
        for position, field in enumerate(row, start=1):
            if len(field) > limits.max_field_chars:
                return f"field {position} is longer than {limits.max_field_chars} characters"
            if "\x00" in field:
                return f"field {position} contains a NUL character"
        return None

    def _records(self, entry: _Entry) -> Iterator[tuple[int, list[str] | None, str | None]]:
        """``(start line, fields, problem)`` for every non-blank record of an entry."""
        name = entry.info.filename
        with self._open_text(entry) as text:
            lines = _Lines(text, name, self.limits.max_record_chars, self.limits.max_record_commas)
            reader = csv.reader(lines, strict=False)
            while True:
                start = lines.line + 1
                lines.record_chars = lines.record_commas = 0
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except _RowTooLong as exc:
                    reader = csv.reader(lines, strict=False)  # start afresh after the skipped line
                    yield start, None, str(exc)
                    continue
                except csv.Error as exc:
                    yield start, None, f"CSV syntax error: {str(exc)[:120]}"
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                yield start, row, self._row_problem(row)

    def iter_rows(self, kind: Kind) -> Iterator[BillRow]:
        """Rows of every entry of ``kind`` (``"cdr"`` or ``"record"``), entries in number order."""
        if kind == "cdr":
            names = self.cdr_files
        elif kind == "record":
            names = self.record_files
        else:
            raise ValueError(f"kind must be 'cdr' or 'record', not {kind!r}")
        for name in list(names):
            yield from self._iter_entry(self._entries[name])

    def iter_cdr(self) -> Iterator[BillRow]:
        """Rows of the ``*_call.csv`` / ``*_call_N.csv`` entries."""
        return self.iter_rows("cdr")

    def iter_records(self) -> Iterator[BillRow]:
        """Rows of the ``*_record.csv`` / ``*_record_N.csv`` entries."""
        return self.iter_rows("record")

    def _iter_entry(self, entry: _Entry) -> Iterator[BillRow]:
        name = entry.info.filename
        # Reading an entry again reports its bad rows again: forget the previous report.
        self.bad_rows[:] = [b for b in self.bad_rows if b.file != name]
        self._bad_counts[name] = 0
        documented = self._documented(entry)
        first = True
        records = 0  # data records, good or bad (not the header row, not blank lines)
        header: list[str] | None = None
        width = len(documented)
        positional = list(documented)  # names for rows of the widest width seen so far
        for line, row, problem in self._records(entry):
            if first:
                first = False
                if row is not None and problem is None:
                    header = self._header_names(entry, row)
                    if header is not None:
                        entry.header = header
                        continue
                entry.header = positional
            records += 1
            if problem is None and row is not None:
                if header is not None and len(row) != len(header):
                    problem = f"has {len(row)} fields; the header row has {len(header)}"
                elif header is None and len(row) < len(documented):
                    problem = (
                        f"has {len(row)} fields, fewer than the {len(documented)} documented "
                        f"{'CDR' if entry.kind == 'cdr' else 'recording-index'} columns (no header row)"
                    )
            if problem is not None or row is None:
                # Counted always, listed up to a limit: a bill whose every row is bad (a format
                # change) must not hold millions of reports in memory.
                self._bad_counts[name] += 1
                if len(self.bad_rows) < self.limits.max_listed_bad_rows:
                    self.bad_rows.append(BadRow(name, line, problem or "unreadable row"))
                continue
            if header is not None:
                yield name, line, dict(zip(header, row, strict=True))
                continue
            if len(row) > width:
                width = len(row)
                positional = entry.header = self._positional(entry, width)
            names = positional if len(row) == width else positional[: len(row)]
            yield name, line, dict(zip(names, row, strict=True))
        if records == 0 and name not in self.empty_entries:
            # Header only, or nothing: possible for a window without calls, but also what a format
            # change would look like, so it is reported rather than passed over.
            self.empty_entries.append(name)

    @property
    def bad_row_count(self) -> int:
        """Every bad row of the entries read so far; :attr:`bad_rows` lists at most
        ``limits.max_listed_bad_rows`` of them."""
        return sum(self._bad_counts.values())

    def header(self, entry: str) -> list[str]:
        """The column names used for ``entry``: the documented names (canonical lower case) plus any
        extra names from its header row, or, without a header row, the documented names plus
        ``extra_N`` (1-based position) for every extra column seen so far (at least in the first
        row). Reads the entry's first record if the entry has not been read yet."""
        item = self._entry(entry)
        if item.header is None:
            self._peek_header(item)
        return list(item.header or self._documented(item))

    def _peek_header(self, entry: _Entry) -> None:
        for _line, row, problem in self._records(entry):
            header = self._header_names(entry, row) if row is not None and problem is None else None
            entry.header = header or self._positional(entry, max(len(row or ()), len(self._documented(entry))))
            return
        entry.header = list(self._documented(entry))

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the ZIP and the file. Safe to call twice."""
        try:
            if self._zip is not None:
                self._zip.close()
        finally:
            self._zip = None
            self._fp.close()

    def __enter__(self) -> BillFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
