"""A bill's rows into partition files: the CSV side of the bill step (docs/design.md, S3 layout).

Rows are streamed, entry by entry, into one temporary CSV body per (kind, entry number, account,
call date) and finished into one file per S3 key (header + rows) in :class:`Outputs`, waiting for
upload; a row no time column dates goes to the partition of its job's window, counted. Rows that
cannot be used are counted (and listed, bounded) in :class:`BadRows`; the index rows that name a
recording are handed to :mod:`exporter.bill_fanout`.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from ccfs.bills import BillError, BillFile
from ccfs.models import MAX_WINDOW, format_time, parse_time
from exporter import layout
from exporter.bill_fanout import Recordings, add_recording
from exporter.jobs.items import Job

__all__ = ["COPY_CHUNK", "MAX_LISTED_BAD_ROWS", "BadRows", "Outputs", "stream_kind", "window_begin_of"]

MAX_LISTED_BAD_ROWS = 10_000  # in the manifest; the count stays exact
COPY_CHUNK = 1024 * 1024


@dataclass
class Partition:
    """One temporary CSV body (rows only) for one (kind, n, account, date)."""

    key: str
    path: str
    handle: IO[str]
    writer: Any
    rows: int = 0


@dataclass
class Outputs:
    """Finished partition files (header + rows), by S3 key, waiting for upload."""

    workdir: str
    files: dict[str, tuple[str, list[str], int]] = field(default_factory=dict)  # key -> (path, header, rows)
    undated: int = 0  # rows with no valid time column, partitioned by the job's window start

    def add(self, key: str, header: list[str], body_path: str, rows: int) -> None:
        existing = self.files.get(key)
        if existing is not None:
            # Two entries with the same number (two name prefixes): append when the columns agree.
            path, old_header, old_rows = existing
            if old_header != header:
                raise BillError(
                    f"two bill entries share the partition {key} with different header rows; refusing to mix them"
                )
            with (
                open(path, "a", encoding="utf-8", newline="") as out,
                open(body_path, encoding="utf-8", newline="") as body,
            ):
                shutil.copyfileobj(body, out, COPY_CHUNK)
            self.files[key] = (path, header, old_rows + rows)
            return
        path = os.path.join(self.workdir, f"out-{len(self.files)}.csv")
        with (
            open(path, "w", encoding="utf-8", newline="") as out,
            open(body_path, encoding="utf-8", newline="") as body,
        ):
            csv.writer(out).writerow(header)
            shutil.copyfileobj(body, out, COPY_CHUNK)
        self.files[key] = (path, header, rows)


@dataclass
class BadRows:
    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_BAD_ROWS:
            self.listed.append({"file": file, "line": line, "reason": reason})


_TIME_COLUMNS = ("call_begin", "wait_begin", "ack_begin", "call_end", "wait_end", "ack_end")


def _row_time(row: dict[str, str]) -> datetime | None:
    """The time that dates a row: ``call_begin``, else the first valid other time column."""
    for column in _TIME_COLUMNS:
        value = (row.get(column) or "").strip()
        if value:
            try:
                return parse_time(value)
            except ValueError:
                continue
    return None


def window_begin_of(job: Job, bill_file_name: str) -> datetime:
    """Start of the job's window (tenant-local), else the bill's date: the fallback partition."""
    try:
        return parse_time(job.begin_time or "")
    except ValueError:
        return datetime.combine(layout.bill_date(bill_file_name), datetime.min.time())


def _call_end(row: dict[str, str], begin: datetime) -> str:
    """``callEnd`` for getRecordFileUrlFromObs: the row's call_end when valid, within 3 days."""
    try:
        end = parse_time((row.get("call_end") or "").strip())
    except ValueError:
        return format_time(begin)
    if end < begin:
        return format_time(begin)
    return format_time(min(end, begin + MAX_WINDOW))


def _values(row: dict[str, Any]) -> list[str]:
    """Every value received, in column order (the reader keeps unknown trailing columns)."""
    return ["" if value is None else str(value) for value in row.values()]


def stream_kind(
    bill: BillFile,
    rows: Iterable[tuple[str, int, dict[str, str]]],
    *,
    kind: str,
    response_id: str,
    outputs: Outputs,
    bad: BadRows,
    recordings: Recordings | None,
    window_begin: datetime,
) -> int:
    """Stream one kind's rows into per-partition files, entry by entry. Returns the rows kept."""
    key_for = layout.cdr_key if kind == "cdr" else layout.index_key
    kept = 0
    entry: str | None = None
    number = 0
    parts: dict[tuple[str, str], Partition] = {}

    def finish_entry() -> None:
        if entry is None:
            return
        header = bill.header(entry)  # final for this entry (grows with extra columns when headerless)
        for part in parts.values():
            part.handle.close()
            outputs.add(part.key, header, part.path, part.rows)
            os.unlink(part.path)
        parts.clear()

    for entry_name, line, row in rows:
        if entry_name != entry:
            finish_entry()
            entry = entry_name
            number = layout.entry_number(entry_name)
        begin = _row_time(row)
        if begin is None:
            # Never drop a row for lack of a time (abandoned legs can have no call_begin): it goes to
            # the partition of the window it was exported for, and the manifest counts it.
            begin = window_begin
            outputs.undated += 1
        try:
            account = layout.account_partition(row.get("account_id"))
        except layout.UnsafeKeyPart:
            bad.add(entry_name, line, "account_id is not usable as an S3 partition value")
            continue
        day = begin.date()
        descriptor: dict[str, Any] | None = None
        if recordings is not None and (row.get("file_name") or "").strip():
            call_id = (row.get("call_id") or "").strip()
            file_name = (row.get("file_name") or "").strip()
            try:
                layout.recording_key(account, day, call_id, layout.recording_stem(file_name))
            except layout.UnsafeKeyPart:
                bad.add(entry_name, line, "call_id or file_name is not usable in a recording's S3 key")
                continue
            descriptor = {
                "callId": call_id,
                "fileName": file_name,
                "callBegin": format_time(begin),
                "callEnd": _call_end(row, begin),
                "accountId": account,
                "callDate": day.isoformat(),
                "originalFileName": row.get("original_file_name") or "",
            }
        part_key = (account, day.isoformat())
        part = parts.get(part_key)
        if part is None:
            path = os.path.join(outputs.workdir, f"body-{kind}-{len(parts)}.csv")
            handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in finish_entry
            part = Partition(key_for(account, day, response_id, number), path, handle, csv.writer(handle))
            parts[part_key] = part
        part.writer.writerow(_values(row))
        part.rows += 1
        kept += 1
        if descriptor is not None and recordings is not None:
            add_recording(recordings, descriptor, row)
    finish_entry()
    return kept
