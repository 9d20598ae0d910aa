"""The adapters the handlers hand to the domain, built from :class:`~exporter.config.Settings`.

Kept out of ``functions/*/app.py`` so that a handler reads as parse → domain → respond, and so that
each adapter is built one way for every function: one jobs-table progress store, one copier (its
requeue is :class:`exporter.queues.QueueSender`, as every producer's). It is also where what the
recording step counted (:class:`exporter.tally.Tally`) becomes the function's metrics: the domain
never touches the Powertools singleton.
The CC-FS client and the pre-signed-URL HTTP client are passed in by the handler, which gets them
from :mod:`exporter.ccfs_factory` (process-wide, per tenant). Boto3 clients are looked up through
``exporter.aws`` at each call (process-wide, cached there; tests swap that cache).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aws_lambda_powertools.metrics import MetricUnit

from exporter import aws, object_lock
from exporter.aws import metrics
from exporter.bill_export import BillResult, BillSource, export_bill
from exporter.config import Settings
from exporter.jobs.progress import Progress
from exporter.jobs.table import JobsTable
from exporter.messages import BillMessage, RecordingMessage
from exporter.operator_actions import retire_replaced_export
from exporter.queues import QueueSender
from exporter.recordings import RecordingCopier, RecordingSource, settle_dead_letter
from exporter.tally import Tally

__all__ = [
    "copy_recording",
    "emit",
    "emit_counts",
    "export_bill_message",
    "export_s3",
    "progress",
    "recording_copier",
    "settle_dead_recording",
]


def emit(tally: Tally) -> None:
    """Add what a domain step counted to the function's metrics, each data point once (flushed by
    the handler's ``@metrics.log_metrics``; from a worker thread, buffered and added once by the
    main thread: ``exporter.batching``)."""
    for point in tally.take():
        metrics.add_metric(name=point.name, unit=point.unit, value=point.value)


def emit_counts(counts: dict[str, int]) -> None:
    """:func:`emit` for counts by metric name (``BillResult.metrics``)."""
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def export_s3(settings: Settings) -> Any:
    """The S3 client for the export bucket: with ``ObjectLockMode`` set, every final object it writes
    carries the retention (:mod:`exporter.object_lock`), staging objects never."""
    policy = None
    if settings.object_lock_mode != "NONE":
        policy = object_lock.RetentionPolicy(settings.object_lock_mode, settings.object_lock_retention_days)
    return object_lock.lock_final_objects(aws.client("s3"), policy)


def progress(settings: Settings) -> Progress:
    """The jobs table's progress store (jobs, REC items, manifests)."""
    return Progress(
        ddb=aws.client("dynamodb"),
        s3=export_s3(settings),
        table=settings.jobs_table,
        bucket=settings.export_bucket,
        retention_days=settings.retention_days,
    )


def export_bill_message(settings: Settings, message: BillMessage, ccfs: BillSource) -> BillResult:
    """The bill step for one BillQueue message (:func:`exporter.bill_export.export_bill`); for a
    re-exported window, then the replaced job's CDR objects removed (``retire_replaced_export``)."""
    result = export_bill(
        message,
        ccfs=ccfs,
        progress=progress(settings),
        s3=export_s3(settings),
        sqs=aws.client("sqs"),
        bucket=settings.export_bucket,
        recording_queue_url=settings.recording_queue_url,
    )
    if result.summary.get("outcome") in ("fanned_out", "completed"):
        table = JobsTable(aws.client("dynamodb"), settings.jobs_table)
        retired = retire_replaced_export(
            table, aws.client("s3"), settings.export_bucket, message.responseId, datetime.now(UTC)
        )
        if retired:
            aws.logger.info(
                "re-export: the replaced export's CDR objects and manifest removed",
                extra={"response_id": message.responseId, "removed": len(retired)},
            )
    return result


def recording_copier(settings: Settings, ccfs: RecordingSource, http: httpx.Client) -> RecordingCopier:
    """The recording step's copier; a recording not on CC-FS yet is sent again to RecordingQueue."""
    return RecordingCopier(
        ccfs=ccfs,
        s3=export_s3(settings),
        progress=progress(settings),
        bucket=settings.export_bucket,
        allowed_hosts=list(settings.recording_url_host_suffixes),
        requeue=QueueSender(settings.recording_queue_url, "RECORDING_QUEUE_URL").send,
        grace=timedelta(hours=settings.recording_grace_hours),
        http=http,
    )


def copy_recording(
    settings: Settings, message: RecordingMessage, ccfs: RecordingSource, http: httpx.Client, *, last_attempt: bool
) -> dict[str, Any]:
    """The recording step for one RecordingQueue message; what it counted is emitted, also when it
    raises (a recording recorded FAILED on its last delivery is counted, then retried into the DLQ)."""
    copier = recording_copier(settings, ccfs, http)
    try:
        return copier.process(message, last_attempt=last_attempt)
    finally:
        emit(copier.tally)


def settle_dead_recording(settings: Settings, message: RecordingMessage, message_id: str) -> dict[str, Any]:
    """An outcome for a recording SQS gave up on (:func:`exporter.recordings.settle_dead_letter`)."""
    tally = Tally()
    try:
        return settle_dead_letter(
            message, progress(settings), message_id=message_id, deliveries=settings.max_receive_count, tally=tally
        )
    finally:
        emit(tally)
