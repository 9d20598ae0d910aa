"""Download function: consumes BillQueue (one bill ZIP per message), RecordingQueue (one recording
per message) and RecordingDLQ (recordings SQS gave up on: each is given an outcome, never copied).
Thin: routing, idempotency, metrics and batch reporting here; the work is in ``exporter.bill_export``
and ``exporter.recordings``.

- Records are told apart by the queue they came from (``eventSourceARN`` vs the names in
  ``BILL_QUEUE_URL`` / ``RECORDING_QUEUE_URL`` / ``RECORDING_DLQ_URL``) and parsed with that queue's
  model (``exporter.messages.route``); a body its model refuses is consumed with the reason.
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

from ccfs.errors import CcfsError, redact
from exporter import wiring
from exporter.aws import client, logger, metrics
from exporter.batching import ConcurrentBatchProcessor, log_keys
from exporter.ccfs_factory import ccfs_client, recording_http
from exporter.config import get_settings, import_setting
from exporter.messages import (
    BillMessage,
    DownloadQueues,
    MessageKind,
    RefusedMessage,
    recording_tenants,
    route,
)

RECORDING_CONCURRENCY: int = import_setting("recording_concurrency")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
recording_processor = ConcurrentBatchProcessor(RECORDING_CONCURRENCY)
# A completed record answers a redelivered bill message for IDEMPOTENCY_EXPIRY_SECONDS (Settings).
bill_idempotency = IdempotencyConfig(
    event_key_jmespath="powertools_json(body).responseId",
    expires_after_seconds=import_setting("idempotency_expiry_seconds"),
)
_bill_store = DynamoDBPersistenceLayer(table_name=import_setting("idempotency_table"), boto3_client=client("dynamodb"))


@idempotent_function(data_keyword_argument="record", config=bill_idempotency, persistence_store=_bill_store)
def process_bill(record: SQSRecord, message: BillMessage) -> dict[str, Any]:
    settings = get_settings()
    with logger.append_context_keys(response_id=message.responseId, bill_file_name=message.billFileName):
        result = wiring.export_bill_message(settings, message, ccfs_client(settings, message.tenant))
    wiring.emit_counts(result.metrics)  # inside the idempotent call: a replay emits nothing
    return result.summary


def _refused(refused: RefusedMessage) -> dict[str, Any]:
    """A body its queue's model refuses (e.g. a responseId the exporter cannot use) is consumed with
    the reason logged and an alarmed metric, never retried in a loop. Both entry points (callback,
    queryBillData) refuse such values first, so no job can exist for it: there is no job to fail."""
    metric = "JobsFailed" if refused.kind is MessageKind.BILL else "RecordingsFailed"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    reason = refused.reason[:1000]
    logger.error("message refused for good, not retried", extra={"kind": refused.kind.value, "reason": reason})
    return {"outcome": "refused", "reason": reason}


def record_handler(record: SQSRecord) -> dict[str, Any]:
    with log_keys(message_id=record.message_id, receive_count=record.attributes.approximate_receive_count):
        settings = get_settings()
        try:
            routed = route(record.event_source_arn or "", record.body or "", DownloadQueues.of(settings))
        except RefusedMessage as refused:
            return _refused(refused)
        message = routed.message
        try:
            if isinstance(message, BillMessage):
                return process_bill(record=record, message=message)
            with log_keys(response_id=message.responseId, call_id=message.callId):
                if routed.kind is MessageKind.DEAD_RECORDING:
                    return wiring.settle_dead_recording(settings, message, record.message_id)
                ccfs, http = ccfs_client(settings, message.tenant), recording_http(settings)
                last = int(record.attributes.approximate_receive_count or 1) >= settings.max_receive_count
                return wiring.copy_recording(settings, message, ccfs, http, last_attempt=last)
        except Exception as exc:
            # Say why (type and redacted message) before the batch reports it: a failed record must
            # never be silent in the logs. Redacted: an error can quote a pre-signed URL.
            if isinstance(exc, CcfsError):
                metrics.add_metric(name="CcfsErrors", unit=MetricUnit.Count, value=1)
            error = redact(str(exc) if isinstance(exc, CcfsError) else repr(exc))
            logger.warning("record failed; SQS will retry it", extra={"kind": routed.kind.value, "error": error})
            raise


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    bill_idempotency.register_lambda_context(context)
    records = event.get("Records") or []
    batch = processor
    if RECORDING_CONCURRENCY > 1 and DownloadQueues.of(get_settings()).all_from(records, MessageKind.RECORDING):
        batch = recording_processor
        settings = get_settings()  # warm the process-wide clients here, not racing in the workers
        for tenant in recording_tenants(records):
            ccfs_client(settings, tenant)
        recording_http(settings)
        for service in ("s3", "dynamodb"):
            client(service)
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)
