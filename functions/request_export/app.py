"""request_export: ask CC-FS for bill files, on a schedule and for backfills.

Two event kinds reach this function:

- a schedule tick (EventBridge rule ``Scheduled Event`` from ``aws.events``, or EventBridge
  Scheduler, whose target input is whatever the schedule sets; an empty ``{}`` is accepted too):
  every tenant's due windows are claimed and requested, then the reconciler runs;
- an SQS batch from RequestQueue: backfill messages ``{accountId?, beginTime, endTime, dataType?}``,
  processed with partial batch responses (``ReportBatchItemFailures``). A message that can never be
  processed is refused at once: moved to the RequestDLQ with the reason (``BackfillRefused``, alarmed).

The domain lives in ``exporter.requesting``; this module parses, wires adapters and reports.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from exporter import ccfs_factory
from exporter.aws import client, emit_freshness, logger, metrics
from exporter.backfill_refusals import RefusedBackfills
from exporter.config import Settings, get_settings
from exporter.jobs.reexport import WindowReexports
from exporter.jobs.store import JobStore
from exporter.jobs.table import JobsTable
from exporter.messages import is_schedule_event, is_sqs_batch
from exporter.queues import QueueSender
from exporter.requesting import Report, RequestContext, handle_backfill_message, run_tick

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


@cache
def _processor() -> BatchProcessor:
    """Powertools Batch, imported by the first backfill batch of a sandbox, not at module scope.

    Most cold starts are schedule ticks (every 15 minutes by default), which never use it; at module
    scope it cost each of them ~20 ms of a ~260 ms ``import app`` (asyncio and every stream's record
    classes; wall clock, bench coldstart's environment, 2 cores). Imported once pydantic is loaded,
    it also loads Powertools' parser models: the first backfill batch of a sandbox pays ~37 ms
    instead (backfills, and their continuation messages, are occasional).
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


# The domain modules log through the stdlib loggers "exporter.*" and "ccfs.*": give them the
# Powertools JSON handler so their lines carry the same keys (and the Lambda request id).
for _name in ("exporter", "ccfs"):
    logging.getLogger(_name)
copy_config_to_registered_loggers(source_logger=logger, include={"exporter", "ccfs"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_context(settings: Settings, lambda_context: LambdaContext) -> RequestContext:
    return RequestContext(
        settings=settings,
        store=JobStore(settings.jobs_table, settings.retention_days),
        ccfs=lambda tenant: ccfs_factory.ccfs_client(settings, tenant),
        clock=utc_now,
        send_request=QueueSender(settings.request_queue_url, "REQUEST_QUEUE_URL").send,
        send_bill=QueueSender(settings.bill_queue_url, "BILL_QUEUE_URL").send,
        measure_freshness=True,
        time_left_ms=lambda_context.get_remaining_time_in_millis,
        zone=lambda tenant: ccfs_factory.tenant_zone(settings, tenant),
        refuse_backfill=lambda body, reason, mid: RefusedBackfills(settings.request_dlq_url).send(
            body, reason, mid, utc_now()
        ),
        reexports=WindowReexports(JobsTable(client("dynamodb"), settings.jobs_table)),
    )


def _emit(report: Report) -> None:
    for name, value in report.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if report.planning_lag_minutes is not None:  # the heartbeat (PlanningHeartbeatAlarm)
        metrics.add_metric(name="PlanningLagMinutes", unit=MetricUnit.NoUnit, value=report.planning_lag_minutes)
    emit_freshness(report.freshness)  # schedule ticks only (FreshnessAlarm, the dashboard)


def _backfill_batch(event: dict[str, Any], ctx: RequestContext, context: LambdaContext) -> dict[str, Any]:
    report = Report()

    def record_handler(record: SQSRecord) -> None:
        handle_backfill_message(ctx, record.body, report, message_id=record.message_id)

    from aws_lambda_powertools.utilities.batch import process_partial_response

    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=_processor(), context=context
        )
    finally:
        _emit(report)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    ctx = build_context(settings, context)
    if is_sqs_batch(event):
        return _backfill_batch(event, ctx, context)
    if not is_schedule_event(event):
        raise ValueError("unsupported event: expected a scheduled event or an SQS batch from RequestQueue")
    report = run_tick(ctx)
    _emit(report)
    summary = report.summary()
    logger.info(
        "schedule tick done",
        extra={**summary, "trigger": event.get("source") or event.get("detail-type") or "unknown"},
    )
    if report.auth_error is not None:
        raise report.auth_error
    return summary
