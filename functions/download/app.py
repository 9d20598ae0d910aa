"""Download function: consumes BillQueue (one bill ZIP per message), RecordingQueue (one recording
per message) and RecordingDLQ (recordings SQS gave up on: each is given an outcome, never copied).
Thin: routing, idempotency and batch reporting here; the work is in ``exporter.bill_export`` and
``exporter.recordings``.

- Records are told apart by the queue they came from (``eventSourceARN`` vs the names in
  ``BILL_QUEUE_URL`` / ``RECORDING_QUEUE_URL``), falling back to the body's shape.
- A bill is idempotent on its responseId (Powertools Idempotency; the in-progress record is deleted
  when the function raises, so a failed bill is retried by SQS, not answered from the store). A
  recording has one duplicate guard, its REC item's conditional write (``RecordingCopier.process``):
  an idempotency record would add two DynamoDB requests to each recording's four.
- Failures are reported per record (``batchItemFailures``): one bad recording never makes SQS
  redeliver its nine neighbours. A batch whose every record failed (a bill batch is one record) is
  reported the same way, not raised: one transient failure is SQS's to retry, not a function error
  for the Errors alarm (failures that last end in the DLQ, which is alarmed).
- A batch of recordings is processed on up to ``RECORDING_CONCURRENCY`` threads (template.yaml sets
  it from ``RecordingThreads``; unset = one at a time) by ``exporter.batching.ConcurrentBatchProcessor``.
  Bills are never run in parallel. Each thread holds at most one CC-FS request at a time: the
  template's bound on connections to CC-FS counts on both.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

# Before anything imports pydantic: Powertools Batch loads its parser models when pydantic is already
# loaded (~37 ms instead of ~19 ms of the cold start; the isort order keeps it first).
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ccfs.errors import CcfsError, redact
from exporter.aws import client, logger, metrics
from exporter.batching import ConcurrentBatchProcessor, log_keys
from exporter.bill_export import BillMessage, export_bill
from exporter.ccfs_factory import ccfs_client, recording_http
from exporter.config import Settings, get_settings
from exporter.jobs.progress import Progress
from exporter.recordings import RecordingCopier, RecordingMessage, settle_dead_letter

RECORDING_CONCURRENCY = max(1, int(os.environ.get("RECORDING_CONCURRENCY") or 1))
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
recording_processor = ConcurrentBatchProcessor(RECORDING_CONCURRENCY)

_IDEMPOTENCY_TABLE = os.environ.get("IDEMPOTENCY_TABLE", "")
# How long a completed record answers a redelivered bill message: at least maxReceiveCount x the
# queue's visibility timeout, the time SQS may deliver one message again (template.yaml sets it;
# Powertools' own default of one hour is shorter than one 5400 s visibility timeout).
IDEMPOTENCY_EXPIRY_SECONDS = int(os.environ.get("IDEMPOTENCY_EXPIRY_SECONDS") or 8 * 3600)
bill_idempotency = IdempotencyConfig(
    event_key_jmespath="powertools_json(body).responseId", expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS
)
_bill_store = DynamoDBPersistenceLayer(table_name=_IDEMPOTENCY_TABLE, boto3_client=client("dynamodb"))


def _queue_name(url_or_arn: str) -> str:
    """``https://sqs.../123/name`` or ``arn:aws:sqs:region:123:name`` → ``name``."""
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def message_kind(record: SQSRecord, settings: Settings) -> str:
    """``"bill"``, ``"recording"`` or ``"dead recording"`` (from the RecordingDLQ): by source queue,
    else by the body's fields."""
    source = _queue_name(record.event_source_arn or "")
    if settings.bill_queue_url and source == _queue_name(settings.bill_queue_url):
        return "bill"
    if settings.recording_queue_url and source == _queue_name(settings.recording_queue_url):
        return "recording"
    if settings.recording_dlq_url and source == _queue_name(settings.recording_dlq_url):
        return "dead recording"
    try:
        body = json.loads(record.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and "billFileName" in body:
        return "bill"
    if isinstance(body, dict) and "callId" in body and "fileName" in body:
        return "recording"
    raise ValueError(f"message {record.message_id} is neither a bill nor a recording message")


def _progress(settings: Settings) -> Progress:
    return Progress(
        ddb=client("dynamodb"),
        s3=client("s3"),
        table=settings.jobs_table,
        bucket=settings.export_bucket,
        retention_days=settings.retention_days,
    )


@idempotent_function(data_keyword_argument="record", config=bill_idempotency, persistence_store=_bill_store)
def process_bill(record: SQSRecord) -> dict[str, Any]:
    settings = get_settings()
    message = BillMessage.model_validate_json(record.body)
    with logger.append_context_keys(response_id=message.responseId, bill_file_name=message.billFileName):
        return export_bill(
            message,
            ccfs=ccfs_client(settings, message.tenant),
            progress=_progress(settings),
            s3=client("s3"),
            sqs=client("sqs"),
            bucket=settings.export_bucket,
            recording_queue_url=settings.recording_queue_url,
        )


def process_recording(record: SQSRecord) -> dict[str, Any]:
    settings = get_settings()
    message = RecordingMessage.model_validate_json(record.body)
    receive_count = int(record.attributes.approximate_receive_count or 1)
    with log_keys(response_id=message.responseId, call_id=message.callId):
        copier = RecordingCopier(
            ccfs=ccfs_client(settings, message.tenant),
            s3=client("s3"),
            progress=_progress(settings),
            bucket=settings.export_bucket,
            allowed_hosts=list(settings.recording_url_host_suffixes),
            requeue=lambda body, delay: client("sqs").send_message(
                QueueUrl=settings.recording_queue_url, MessageBody=json.dumps(body), DelaySeconds=delay
            ),
            grace=timedelta(hours=settings.recording_grace_hours),
            http=recording_http(settings),
        )
        return copier.process(message, last_attempt=receive_count >= settings.max_receive_count)


def settle_recording(record: SQSRecord) -> dict[str, Any]:
    settings = get_settings()
    message = RecordingMessage.model_validate_json(record.body)
    with log_keys(response_id=message.responseId, call_id=message.callId):
        return settle_dead_letter(
            message, _progress(settings), message_id=record.message_id, deliveries=settings.max_receive_count
        )


def _refused(kind: str, record: SQSRecord) -> dict[str, Any] | None:
    """A message whose body can never be processed (e.g. a responseId or billFileName the exporter
    cannot use): consumed with the reason logged and an alarmed metric, never retried in a loop.
    None when the body is valid. Both entry points (callback, queryBillData) refuse such values
    first, so no job can exist for it: there is no job to fail."""
    model: type[BillMessage] | type[RecordingMessage] = BillMessage if kind == "bill" else RecordingMessage
    try:
        model.model_validate_json(record.body)
    except ValidationError as exc:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        metrics.add_metric(name="JobsFailed" if kind == "bill" else "RecordingsFailed", unit=MetricUnit.Count, value=1)
        logger.error("message refused for good, not retried", extra={"kind": kind, "reason": reason[:1000]})
        return {"outcome": "refused", "reason": reason[:1000]}
    return None


def record_handler(record: SQSRecord) -> dict[str, Any]:
    with log_keys(message_id=record.message_id, receive_count=record.attributes.approximate_receive_count):
        kind = message_kind(record, get_settings())
        refused = _refused(kind, record)
        if refused is not None:
            return refused
        try:
            if kind == "bill":
                return process_bill(record=record)
            if kind == "dead recording":
                return settle_recording(record)
            return process_recording(record=record)
        except CcfsError as exc:
            metrics.add_metric(name="CcfsErrors", unit=MetricUnit.Count, value=1)
            logger.warning("record failed; SQS will retry it", extra={"kind": kind, "error": redact(str(exc))})
            raise
        except Exception as exc:
            # Say why (type and redacted message) before the batch reports it: a failed record must
            # never be silent in the logs. Redacted: an error can quote a pre-signed URL.
            logger.warning("record failed; SQS will retry it", extra={"kind": kind, "error": redact(repr(exc))})
            raise


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    bill_idempotency.register_lambda_context(context)
    batch = processor
    if RECORDING_CONCURRENCY > 1 and _all_recordings(event):
        batch = recording_processor
        settings = get_settings()  # warm the process-wide clients here, not racing in the workers
        for tenant in _tenants_of(event):
            ccfs_client(settings, tenant)
        recording_http(settings)
        for service in ("s3", "dynamodb"):
            client(service)
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)


def _tenants_of(event: dict[str, Any]) -> set[str]:
    """The tenants a batch's recording messages name (unreadable bodies are left to their record)."""
    tenants: set[str] = set()
    for record in event.get("Records") or []:
        try:
            tenant = json.loads(str(record.get("body") or "")).get("tenant")
        except (ValueError, AttributeError):
            continue
        if isinstance(tenant, str) and tenant:
            tenants.add(tenant)
    return tenants


def _all_recordings(event: dict[str, Any]) -> bool:
    """Whether every record comes from RecordingQueue (a bill is never processed in parallel)."""
    queue = _queue_name(get_settings().recording_queue_url or "")
    records = event.get("Records") or []
    return (
        bool(queue)
        and len(records) > 1
        and all(_queue_name(str(r.get("eventSourceARN") or "")) == queue for r in records)
    )
