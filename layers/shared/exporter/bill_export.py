"""Bill step of the download: one BillQueue message → raw ZIP, CDR and recording-index partitions,
one RecordingQueue message per recording (docs/design.md).

Memory stays flat whatever the bill's size: the ZIP is streamed to ``/tmp``, rows are streamed from
it into one temporary CSV file per partition, and the recording descriptors go to a temporary JSONL
file; only the small per-call keys needed to number recordings (``ordinal``/``count``) are held.

Nothing is uploaded to ``cdr/`` or ``recording_index/`` before the whole ZIP has been read: a ZIP
entry's CRC is only checked at its end (see :mod:`ccfs.bills`), so a corrupt bill leaves only its
raw ZIP and a FAILED manifest behind. Keys are deterministic (``{responseId}-{n}.csv``), so a retry
rewrites the same objects and resending recording messages is harmless (recordings are idempotent).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, BinaryIO, Protocol

from ccfs.bills import BillError, BillFile
from ccfs.errors import CcfsAuthError, CcfsNotFound, CcfsPermanentError
from ccfs.models import MAX_WINDOW, format_time, parse_time
from exporter import layout
from exporter.aws import logger
from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus, utc_now_iso
from exporter.jobs.progress import BILL_PROCESSED, JOB_METRICS, Progress
from exporter.messages import BillMessage, RecordingMessage, message_body

__all__ = [
    "BILL_METRICS",
    "BillResult",
    "BillSource",
    "export_bill",
    "send_batches",
]

SQS_BATCH = 10
SEND_ATTEMPTS = 4
MAX_LISTED_BAD_ROWS = 10_000  # in the manifest; the count stays exact
MAX_JOB_KEYS = 200  # S3 keys kept on the job item per kind (the manifest lists all of them)
_COPY_CHUNK = 1024 * 1024


class BillSource(Protocol):
    """The part of :class:`ccfs.client.CcfsClient` this step uses."""

    def download_bill_file(self, bill_file_name: str, sink: BinaryIO) -> int: ...


BILL_METRICS = ("BillRows", "BadRows", "BillEntriesUnrecognised", "BillEntriesEmpty")
"""What a processed bill reports, by metric name (docs/design.md metric list): rows kept, rows
refused, ZIP entries not recognised as CDR or index files (alarmed), entries without rows."""


@dataclass(frozen=True)
class BillResult:
    """What :func:`export_bill` did: ``summary`` is small and JSON-able (the idempotency record keeps
    it, so a redelivered message is answered with it); ``metrics`` counts by :data:`BILL_METRICS`
    name (only when this run saved the bill's rows) and by ``JOB_METRICS`` name (when this run
    failed or completed the job), for the handler to emit."""

    summary: dict[str, Any]
    metrics: dict[str, int] = field(default_factory=dict)


@dataclass
class _Partition:
    """One temporary CSV body (rows only) for one (kind, n, account, date)."""

    key: str
    path: str
    handle: IO[str]
    writer: Any
    rows: int = 0


@dataclass
class _Outputs:
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
                shutil.copyfileobj(body, out, _COPY_CHUNK)
            self.files[key] = (path, header, old_rows + rows)
            return
        path = os.path.join(self.workdir, f"out-{len(self.files)}.csv")
        with (
            open(path, "w", encoding="utf-8", newline="") as out,
            open(body_path, encoding="utf-8", newline="") as body,
        ):
            csv.writer(out).writerow(header)
            shutil.copyfileobj(body, out, _COPY_CHUNK)
        self.files[key] = (path, header, rows)


@dataclass
class _Recordings:
    """Descriptors in a JSONL file; per call, the sort keys needed for ordinal/count."""

    path: str
    handle: IO[str]
    per_call: dict[str, list[tuple[str, str, str, bool]]] = field(default_factory=dict)  # begin, end, name, timed
    seen: set[tuple[str, str]] = field(default_factory=set)
    total: int = 0
    duplicates: int = 0


@dataclass
class _BadRows:
    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_BAD_ROWS:
            self.listed.append({"file": file, "line": line, "reason": reason})


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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


def _window_begin(job: Job, bill_file_name: str) -> datetime:
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


def _stream_kind(
    bill: BillFile,
    rows: Iterable[tuple[str, int, dict[str, str]]],
    *,
    kind: str,
    response_id: str,
    outputs: _Outputs,
    bad: _BadRows,
    recordings: _Recordings | None,
    window_begin: datetime,
) -> int:
    """Stream one kind's rows into per-partition files, entry by entry. Returns the rows kept."""
    key_for = layout.cdr_key if kind == "cdr" else layout.index_key
    kept = 0
    entry: str | None = None
    number = 0
    parts: dict[tuple[str, str], _Partition] = {}

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
            part = _Partition(key_for(account, day, response_id, number), path, handle, csv.writer(handle))
            parts[part_key] = part
        part.writer.writerow(_values(row))
        part.rows += 1
        kept += 1
        if descriptor is not None and recordings is not None:
            _add_recording(recordings, descriptor, row)
    finish_entry()
    return kept


def _add_recording(recordings: _Recordings, descriptor: dict[str, Any], row: dict[str, str]) -> None:
    call_id, file_name = descriptor["callId"], descriptor["fileName"]
    unique = (call_id, layout.recording_path(file_name))  # the whole path: two agents' files may share a name
    if unique in recordings.seen:
        recordings.duplicates += 1
        return
    recordings.seen.add(unique)
    recordings.per_call.setdefault(call_id, []).append(
        (descriptor["callBegin"], descriptor["callEnd"], file_name, _has_times(row))
    )
    recordings.handle.write(json.dumps({**descriptor, "row": row}, ensure_ascii=False) + "\n")
    recordings.total += 1


def _has_times(row: dict[str, str]) -> bool:
    """Whether an index row has a valid call_begin and call_end (its place in the call is known)."""
    try:
        parse_time((row.get("call_begin") or "").strip())
        parse_time((row.get("call_end") or "").strip())
    except ValueError:
        return False
    return True


def _recording_messages(recordings: _Recordings, response_id: str, tenant: str) -> Iterator[str]:
    """RecordingQueue bodies, read back from the JSONL file; ordinal is 1-based per call.

    A call's rows are ordered as CC-FS orders its URLs, "by start time and end time" (protocol §5):
    by call_begin, then call_end, then file name (only to be deterministic). ``ordinalCertain`` is
    false where that order is a guess: two rows with the same begin and end, or a row of the call
    without valid times (its place is unknown, so everyone's is).
    """
    ordinals: dict[tuple[str, str], tuple[int, int, bool, int, int]] = {}
    key_names: dict[tuple[str, str], str] = {}  # recordings of one call sharing a stem: distinct key names
    for call_id, items in recordings.per_call.items():
        stems = Counter(layout.recording_stem(name) for _begin, _end, name, _timed in items)
        for _begin, _end, name, _timed in items:
            if stems[layout.recording_stem(name)] > 1:
                key_names[(call_id, name)] = layout.distinct_stem(name)
        ordered = sorted(items)
        all_timed = all(timed for *_, timed in items)
        times = Counter((begin, end) for begin, end, _name, _timed in items)
        for position, (begin, end, file_name, _timed) in enumerate(ordered, start=1):
            # The recording step asks for this row's [callBegin, callEnd]: CC-FS answers the call's
            # recordings that begin inside it (this one and any that start before it ends).
            in_window = [item[2] for item in ordered if begin <= item[0] <= end]
            ordinals[(call_id, file_name)] = (
                position,
                len(ordered),
                all_timed and times[(begin, end)] == 1,
                in_window.index(file_name) + 1,
                len(in_window),
            )
    with open(recordings.path, encoding="utf-8") as source:
        for line in source:
            descriptor = json.loads(line)
            ordinal, count, certain, url_ordinal, url_count = ordinals[(descriptor["callId"], descriptor["fileName"])]
            key_name = key_names.get((descriptor["callId"], descriptor["fileName"]))
            # Built without validation, as it always was sent: a value the consumer's model refuses
            # (e.g. a call_id longer than CC-FS's) is refused there, for this recording alone, with
            # the reason; validating here would fail the whole bill's fan-out instead.
            yield message_body(
                RecordingMessage.model_construct(
                    keyName=key_name,
                    responseId=response_id,
                    tenant=tenant,
                    accountId=descriptor["accountId"],
                    callId=descriptor["callId"],
                    callBegin=descriptor["callBegin"],
                    callEnd=descriptor["callEnd"],
                    fileName=descriptor["fileName"],
                    originalFileName=descriptor["originalFileName"],
                    callDate=descriptor["callDate"],
                    ordinal=ordinal,
                    count=count,
                    ordinalCertain=certain,
                    urlOrdinal=url_ordinal,
                    urlCount=url_count,
                    row=descriptor["row"],
                )
            )


def send_batches(
    sqs: Any,
    queue_url: str,
    bodies: Iterable[str],
    *,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send bodies in batches of 10, resending the entries SQS reports as ``Failed`` (bounded).

    Raises RuntimeError when some entries still fail, so the bill message is retried; resending the
    ones that did go out is harmless because recordings are idempotent.
    """
    sent = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal sent
        pending = {str(i): body for i, body in enumerate(batch)}
        for attempt in range(attempts):
            reply = sqs.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": b} for i, b in pending.items()]
            )
            for ok in reply.get("Successful", []):
                pending.pop(ok["Id"], None)
            failed = reply.get("Failed", [])
            if not pending:
                break
            if any(f.get("SenderFault") for f in failed):
                codes = sorted({str(f.get("Code")) for f in failed})
                raise RuntimeError(f"RecordingQueue refused {len(pending)} message(s): {', '.join(codes)}")
            if attempt + 1 < attempts:
                sleep(min(2.0, 0.1 * 2**attempt))
        if pending:
            raise RuntimeError(f"{len(pending)} RecordingQueue message(s) still failing after {attempts} attempts")
        sent += len(batch)
        batch.clear()

    for body in bodies:
        batch.append(body)
        if len(batch) == SQS_BATCH:
            flush()
    if batch:
        flush()
    return sent


def _fail(progress: Progress, message: BillMessage, job: Job, error: str, extra: dict[str, Any]) -> dict[str, int]:
    """Bill unusable: manifest with the failure, job FAILED (metric JobsFailed when this run failed
    it: the counts returned), message consumed."""
    logger.error("bill failed permanently", extra={"response_id": message.responseId, "error": error})
    document = progress.manifests.base(replace(job, error=error), JobStatus.FAILED)
    document.update(extra)
    progress.manifests.write(message.responseId, document)
    return {JOB_METRICS[JobStatus.FAILED]: 1} if progress.fail_job(message.responseId, error) else {}


@dataclass
class _ReadBill:
    """What reading the ZIP gave: the partition files (not uploaded yet), the recordings to fan out,
    and the counts, bad rows and unusable entries the manifest and the job report."""

    outputs: _Outputs
    recordings: _Recordings
    cdr_rows: int
    index_rows: int
    unexpected: list[str]
    empty: list[str]

    def counts(self, bad: _BadRows) -> dict[str, int]:
        return {
            "cdr_rows": self.cdr_rows,
            "index_rows": self.index_rows,
            "bad_rows": bad.count,
            "undated_rows": self.outputs.undated,
            "recordings_total": self.recordings.total,
        }


@dataclass
class _Uploaded:
    """The bill's objects in S3: the raw ZIP and the CDR and recording-index partitions."""

    raw: dict[str, Any]
    cdr: list[dict[str, Any]]
    index: list[dict[str, Any]]


def _download_zip(ccfs: BillSource, message: BillMessage, workdir: str) -> tuple[str, int]:
    """The bill ZIP from CC-FS, streamed to ``workdir``: its path and size."""
    zip_path = os.path.join(workdir, message.billFileName)
    with open(zip_path, "wb") as sink:
        size = ccfs.download_bill_file(message.billFileName, sink)
    return zip_path, size


def _store_raw(s3: Any, bucket: str, message: BillMessage, zip_path: str, size: int) -> dict[str, Any]:
    """The ZIP as received under ``raw/`` (kept whatever its content): its key, size and SHA-256."""
    raw_key = layout.raw_key(message.tenant, message.billFileName)
    raw = {"key": raw_key, "size": size, "sha256": _sha256_file(zip_path)}
    s3.upload_file(zip_path, bucket, raw_key, ExtraArgs={"ContentType": "application/zip"})
    logger.info("bill ZIP stored", extra={"response_id": message.responseId, "key": raw_key, "size": size})
    return raw


def _read_bill(zip_path: str, job: Job, message: BillMessage, workdir: str, bad: _BadRows) -> _ReadBill:
    """Stream every CDR and index row of the ZIP into partition files and the recordings list,
    counting refused rows into ``bad``. Raises :class:`BillError` when the ZIP is unusable; nothing
    is uploaded before the whole ZIP was read (a ZIP entry's CRC is checked at its end)."""
    outputs = _Outputs(workdir)
    window_begin = _window_begin(job, message.billFileName)
    rec_path = os.path.join(workdir, "recordings.jsonl")
    rid = message.responseId
    with BillFile(zip_path) as bill, open(rec_path, "w", encoding="utf-8") as rec_handle:
        recordings = _Recordings(rec_path, rec_handle)
        stream = functools.partial(
            _stream_kind, bill, response_id=rid, outputs=outputs, bad=bad, window_begin=window_begin
        )
        cdr_rows = stream(bill.iter_cdr(), kind="cdr", recordings=None)
        index_rows = stream(bill.iter_records(), kind="record", recordings=recordings)
        for reader_bad in bill.bad_rows:
            bad.add(reader_bad.file, reader_bad.line, reader_bad.reason)
        bad.count += bill.bad_row_count - len(bill.bad_rows)  # counted by the reader, not listed
        return _ReadBill(
            outputs, recordings, cdr_rows, index_rows, list(bill.unexpected_entries), list(bill.empty_entries)
        )


def _upload_partitions(s3: Any, bucket: str, outputs: _Outputs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Upload each finished partition file (deleted once uploaded): the CDR and the index keys with
    their row counts."""
    cdr_keys: list[dict[str, Any]] = []
    index_keys: list[dict[str, Any]] = []
    for key, (path, _header, rows) in outputs.files.items():
        s3.upload_file(path, bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"})
        (cdr_keys if key.startswith(layout.CDR_PREFIX) else index_keys).append({"key": key, "rows": rows})
        os.unlink(path)
    return cdr_keys, index_keys


def _write_bill_manifest(progress: Progress, job: Job, read: _ReadBill, bad: _BadRows, uploaded: _Uploaded) -> None:
    """The job's manifest as of the bill step (status DOWNLOADING), only on the run that first
    saves the bill's results. Written before the job records them: no recording can complete the
    job (and write the final manifest) before this one exists, and a retry after the results were
    saved never overwrites a final manifest with this one."""
    if job.bill_processed_at is not None:
        return
    counted = replace(
        job,
        cdr_rows=read.cdr_rows,
        index_rows=read.index_rows,
        bad_rows=bad.count,
        undated_rows=read.outputs.undated,
        recordings_total=read.recordings.total,
    )
    document = progress.manifests.base(counted, JobStatus.DOWNLOADING)
    document.update(
        {
            "raw": uploaded.raw,
            "cdr": uploaded.cdr,
            "recording_index": uploaded.index,
            "bad_rows": bad.listed,
            "bad_rows_truncated": bad.count > len(bad.listed),
            "unexpected_entries": read.unexpected,
            "empty_entries": read.empty,
            "undated_rows": read.outputs.undated,
        }
    )
    progress.manifests.write(job.response_id, document)


def _bill_results(message: BillMessage, read: _ReadBill, bad: _BadRows, uploaded: _Uploaded) -> dict[str, Any]:
    """What the job item keeps of the bill step (the manifest lists everything in full)."""
    return {
        **read.counts(bad),
        BILL_PROCESSED: utc_now_iso(),
        "bill_file_name": message.billFileName,
        "unexpected_entries": read.unexpected[:MAX_JOB_KEYS],
        "empty_entries": read.empty[:MAX_JOB_KEYS],
        "raw_key": uploaded.raw["key"],
        "manifest_key": layout.manifest_key(message.responseId),
        "cdr_keys": [k["key"] for k in uploaded.cdr[:MAX_JOB_KEYS]],
        "index_keys": [k["key"] for k in uploaded.index[:MAX_JOB_KEYS]],
    }


def _bill_metrics(response_id: str, read: _ReadBill, bad: _BadRows) -> dict[str, int]:
    """Always reported (also as 0) so the alarm sees data points; an entry the reader cannot
    classify is data this export did not read (a naming change at CC-FS): alarmed."""
    values = (read.cdr_rows + read.index_rows, bad.count, len(read.unexpected), len(read.empty))
    if read.unexpected or read.empty:
        logger.warning(
            "bill has entries that gave no rows",
            extra={
                "response_id": response_id,
                "unrecognised_entries": read.unexpected[:20],
                "empty_entries": read.empty[:20],
            },
        )
    return dict(zip(BILL_METRICS, values, strict=True))


def export_bill(
    message: BillMessage,
    *,
    ccfs: BillSource,
    progress: Progress,
    s3: Any,
    sqs: Any,
    bucket: str,
    recording_queue_url: str,
    tmp_dir: str | None = None,
) -> BillResult:
    """Run the bill step for one message. Returns its summary and the counts the handler emits.

    Steps: claim the job (``READY → DOWNLOADING``) → download the ZIP → store it raw → read it into
    partitions → upload them → manifest → save the results on the job → one RecordingQueue message
    per recording (or complete a job without recordings).

    Raises on transient problems (CC-FS 5xx/flow control/auth, S3/SQS errors) so the message is
    retried; consumes the message on permanent ones after marking the job FAILED.
    """
    rid = message.responseId
    state, job = progress.begin_download(rid)
    if state == "skip":
        logger.info("job not downloadable, skipping bill", extra={"response_id": rid, "status": job.job_status})
        return BillResult({"responseId": rid, "outcome": "skipped", "status": job.job_status})
    job = replace(job, bill_file_name=message.billFileName)
    workdir = tempfile.mkdtemp(prefix="bill-", dir=tmp_dir)
    try:
        try:
            zip_path, size = _download_zip(ccfs, message, workdir)
        except CcfsAuthError:
            raise  # credentials or clock: retry, alarm; not this bill's fault
        except (CcfsNotFound, CcfsPermanentError) as exc:
            failed = _fail(progress, message, job, f"downloadBillFile failed: {exc}", {})
            return BillResult({"responseId": rid, "outcome": "failed", "error": str(exc)}, failed)
        raw = _store_raw(s3, bucket, message, zip_path, size)
        bad = _BadRows()
        try:
            read = _read_bill(zip_path, job, message, workdir, bad)
        except BillError as exc:
            listed = {"raw": raw, "bad_rows": bad.listed, "bad_rows_truncated": bad.count > len(bad.listed)}
            failed = _fail(progress, message, job, f"bill ZIP unusable: {exc}", listed)
            return BillResult({"responseId": rid, "outcome": "failed", "error": str(exc)}, failed)
        uploaded = _Uploaded(raw, *_upload_partitions(s3, bucket, read.outputs))
        if read.recordings.duplicates:
            logger.warning(
                "recording index lists a recording more than once; exported once",
                extra={"response_id": rid, "duplicates": read.recordings.duplicates},
            )
        _write_bill_manifest(progress, job, read, bad, uploaded)
        if not progress.save_bill_results(rid, _bill_results(message, read, bad, uploaded)):
            logger.warning("job left DOWNLOADING during the bill step; not fanning out", extra={"response_id": rid})
            return BillResult({"responseId": rid, "outcome": "abandoned"})
        emitted = _bill_metrics(rid, read, bad)
        return _fan_out(message, read, bad, uploaded, sqs, recording_queue_url, progress, emitted)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _fan_out(
    message: BillMessage,
    read: _ReadBill,
    bad: _BadRows,
    uploaded: _Uploaded,
    sqs: Any,
    recording_queue_url: str,
    progress: Progress,
    emitted: dict[str, int],
) -> BillResult:
    """One RecordingQueue message per recording; a job with no recordings is completed here."""
    rid = message.responseId
    sent = send_batches(sqs, recording_queue_url, _recording_messages(read.recordings, rid, message.tenant))
    logger.info(
        "bill exported",
        extra={
            "response_id": rid,
            "cdr_rows": read.cdr_rows,
            "index_rows": read.index_rows,
            "bad_rows": bad.count,
            "recordings": sent,
            "partitions": len(uploaded.cdr) + len(uploaded.index),
        },
    )
    final = progress.maybe_complete(rid) if read.recordings.total == 0 else None
    if final is not None:
        emitted[JOB_METRICS[final]] = 1
    outcome = "fanned_out" if final is None else "completed"
    return BillResult({"responseId": rid, "outcome": outcome, **read.counts(bad)}, emitted)
