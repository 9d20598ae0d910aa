"""Bill step of the download: one BillQueue message → raw ZIP, CDR and recording-index partitions,
one RecordingQueue message per recording (docs/design.md).

Memory stays flat whatever the bill's size: the ZIP is streamed to ``/tmp``, rows are streamed from
it into one temporary CSV file per partition, and the recording descriptors go to a temporary JSONL
file; only the small per-call keys needed to number recordings (``ordinal``/``count``) are held.

Nothing is uploaded to ``cdr/`` or ``recording_index/`` before the whole ZIP has been read: a ZIP
entry's CRC is only checked at its end (see :mod:`ccfs.bills`), so a corrupt bill leaves only its
raw ZIP and a FAILED manifest behind. Keys are deterministic (``{responseId}-{n}.csv``), so a retry
rewrites the same objects and resending recording messages is harmless (recordings are idempotent).

This module runs the step (job, ZIP, S3, manifest, results); the rows into partition files are
:mod:`exporter.bill_rows`, the recordings and their RecordingQueue messages :mod:`exporter.bill_fanout`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Protocol

from ccfs.bills import BillError, BillFile
from ccfs.errors import CcfsAuthError, CcfsNotFound, CcfsPermanentError
from exporter import layout
from exporter.aws import logger
from exporter.bill_fanout import Recordings, recording_messages, send_batches
from exporter.bill_rows import COPY_CHUNK, BadRows, Outputs, stream_kind, window_begin_of
from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus, utc_now_iso
from exporter.jobs.progress import BILL_PROCESSED, JOB_METRICS, Progress
from exporter.messages import BillMessage

__all__ = [
    "BILL_METRICS",
    "BillResult",
    "BillSource",
    "export_bill",
    "send_batches",  # moved to exporter.bill_fanout; still importable from here
]

MAX_JOB_KEYS = 200  # S3 keys kept on the job item per kind (the manifest lists all of them)


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


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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

    outputs: Outputs
    recordings: Recordings
    cdr_rows: int
    index_rows: int
    unexpected: list[str]
    empty: list[str]

    def counts(self, bad: BadRows) -> dict[str, int]:
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


def _read_bill(zip_path: str, job: Job, message: BillMessage, workdir: str, bad: BadRows) -> _ReadBill:
    """Stream every CDR and index row of the ZIP into partition files and the recordings list,
    counting refused rows into ``bad``. Raises :class:`BillError` when the ZIP is unusable; nothing
    is uploaded before the whole ZIP was read (a ZIP entry's CRC is checked at its end)."""
    outputs = Outputs(workdir)
    window_begin = window_begin_of(job, message.billFileName)
    rec_path = os.path.join(workdir, "recordings.jsonl")
    rid = message.responseId
    with BillFile(zip_path) as bill, open(rec_path, "w", encoding="utf-8") as rec_handle:
        recordings = Recordings(rec_path, rec_handle)
        stream = functools.partial(
            stream_kind, bill, response_id=rid, outputs=outputs, bad=bad, window_begin=window_begin
        )
        cdr_rows = stream(bill.iter_cdr(), kind="cdr", recordings=None)
        index_rows = stream(bill.iter_records(), kind="record", recordings=recordings)
        for reader_bad in bill.bad_rows:
            bad.add(reader_bad.file, reader_bad.line, reader_bad.reason)
        bad.count += bill.bad_row_count - len(bill.bad_rows)  # counted by the reader, not listed
        return _ReadBill(
            outputs, recordings, cdr_rows, index_rows, list(bill.unexpected_entries), list(bill.empty_entries)
        )


def _upload_partitions(s3: Any, bucket: str, outputs: Outputs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Upload each finished partition file (deleted once uploaded): the CDR and the index keys with
    their row counts."""
    cdr_keys: list[dict[str, Any]] = []
    index_keys: list[dict[str, Any]] = []
    for key, (path, _header, rows) in outputs.files.items():
        s3.upload_file(path, bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"})
        (cdr_keys if key.startswith(layout.CDR_PREFIX) else index_keys).append({"key": key, "rows": rows})
        os.unlink(path)
    return cdr_keys, index_keys


def _write_bill_manifest(progress: Progress, job: Job, read: _ReadBill, bad: BadRows, uploaded: _Uploaded) -> None:
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


def _bill_results(message: BillMessage, read: _ReadBill, bad: BadRows, uploaded: _Uploaded) -> dict[str, Any]:
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


def _bill_metrics(response_id: str, read: _ReadBill, bad: BadRows) -> dict[str, int]:
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
        bad = BadRows()
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
    bad: BadRows,
    uploaded: _Uploaded,
    sqs: Any,
    recording_queue_url: str,
    progress: Progress,
    emitted: dict[str, int],
) -> BillResult:
    """One RecordingQueue message per recording; a job with no recordings is completed here."""
    rid = message.responseId
    sent = send_batches(sqs, recording_queue_url, recording_messages(read.recordings, rid, message.tenant))
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
