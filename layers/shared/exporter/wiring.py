"""The adapters the handlers hand to the domain, built from :class:`~exporter.config.Settings`.

Kept out of ``functions/*/app.py`` so that a handler reads as parse → domain → respond, and so that
each adapter is built one way for every function: one jobs-table progress store, one copier (its
requeue is :class:`exporter.queues.QueueSender`, as every producer's).
The CC-FS client and the pre-signed-URL HTTP client are passed in by the handler, which gets them
from :mod:`exporter.ccfs_factory` (process-wide, per tenant). Boto3 clients are looked up through
``exporter.aws`` at each call (process-wide, cached there; tests swap that cache).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from exporter import aws
from exporter.bill_export import BillResult, BillSource, export_bill
from exporter.config import Settings
from exporter.jobs.progress import Progress
from exporter.messages import BillMessage, RecordingMessage
from exporter.queues import QueueSender
from exporter.recordings import RecordingCopier, RecordingSource, settle_dead_letter

__all__ = ["export_bill_message", "progress", "recording_copier", "settle_dead_recording"]


def progress(settings: Settings) -> Progress:
    """The jobs table's progress store (jobs, REC items, manifests)."""
    return Progress(
        ddb=aws.client("dynamodb"),
        s3=aws.client("s3"),
        table=settings.jobs_table,
        bucket=settings.export_bucket,
        retention_days=settings.retention_days,
    )


def export_bill_message(settings: Settings, message: BillMessage, ccfs: BillSource) -> BillResult:
    """The bill step for one BillQueue message (:func:`exporter.bill_export.export_bill`)."""
    return export_bill(
        message,
        ccfs=ccfs,
        progress=progress(settings),
        s3=aws.client("s3"),
        sqs=aws.client("sqs"),
        bucket=settings.export_bucket,
        recording_queue_url=settings.recording_queue_url,
    )


def recording_copier(settings: Settings, ccfs: RecordingSource, http: httpx.Client) -> RecordingCopier:
    """The recording step's copier; a recording not on CC-FS yet is sent again to RecordingQueue."""
    return RecordingCopier(
        ccfs=ccfs,
        s3=aws.client("s3"),
        progress=progress(settings),
        bucket=settings.export_bucket,
        allowed_hosts=list(settings.recording_url_host_suffixes),
        requeue=QueueSender(settings.recording_queue_url, "RECORDING_QUEUE_URL").send,
        grace=timedelta(hours=settings.recording_grace_hours),
        http=http,
    )


def settle_dead_recording(settings: Settings, message: RecordingMessage, message_id: str) -> dict[str, Any]:
    """An outcome for a recording SQS gave up on (:func:`exporter.recordings.settle_dead_letter`)."""
    return settle_dead_letter(message, progress(settings), message_id=message_id, deliveries=settings.max_receive_count)
