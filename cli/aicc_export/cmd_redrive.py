"""``aicc-export redrive [QUEUE]``: dead letters back to work.

- ``RequestDLQ``, ``BillDLQ``, ``RecordingDLQ``: back to the queue whose redrive policy names the DLQ,
  with an SQS message move task (``StartMessageMoveTask``, followed with ``ListMessageMoveTasks``).
  Where move tasks are unavailable (the local stack's moto has none) the messages are moved by hand:
  receive, send to the source with their attributes, delete what was sent; bounded by the depth the
  DLQ had when it started, and by ``--timeout``.
- ``ScheduleDLQ``: its messages are failed planning ticks (an EventBridge Scheduler delivery that
  failed: the target's input; or a Lambda OnFailure destination record with the event in
  ``requestPayload``). Each is replayed as the backfill it stood for: per tenant, on its own wall clock
  (its ``timezone`` in the CC-FS secret), the ``WindowMinutes`` grid window that ended last before the
  tick's settled time (``SettleMinutes`` before it). A backfill
  of a window the schedule already planned is skipped by the function (same window key), so a replay
  never asks CC-FS twice. A message that is neither shape stays in the queue, listed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from botocore.exceptions import BotoCoreError, ClientError

from aicc_export.deployment import settings_of, tenant_zones
from aicc_export.output import Result, finish
from aicc_export.target import Target
from exporter.config import ALL_ACCOUNTS, Settings
from exporter.messages import BackfillMessage, message_body
from exporter.planner import Window, floor_to_grid, settled_local

__all__ = ["DLQ_SOURCES", "command", "tick_backfills", "tick_time"]

DLQ_SOURCES = {"RequestDLQ": "RequestQueue", "BillDLQ": "BillQueue", "RecordingDLQ": "RecordingQueue"}
SCHEDULE_DLQ = "ScheduleDLQ"
_BATCH = 10
_UNAVAILABLE = ("NotImplemented", "UnsupportedOperation", "InvalidAction", "UnknownOperation", "InternalFailure")


def _attr(sqs: Any, url: str, *names: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names)).get("Attributes", {}))


def _depth(sqs: Any, url: str) -> int:
    attrs = _attr(sqs, url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))


def _receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    reply = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=_BATCH,
        WaitTimeSeconds=1,
        VisibilityTimeout=120,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(reply.get("Messages", []))


def _delete(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    if messages:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def _move_by_hand(sqs: Any, dlq: str, source: str, deadline: float, clock: Callable[[], float]) -> tuple[int, int]:
    """Receive/send/delete until the DLQ is empty, its starting depth is moved, or the deadline: (moved, failed)."""
    budget = _depth(sqs, dlq)
    moved = failed = 0
    while moved + failed < budget and clock() < deadline:
        messages = _receive(sqs, dlq)
        if not messages:
            break
        entries = []
        for i, m in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
            if m.get("MessageAttributes"):
                entry["MessageAttributes"] = m["MessageAttributes"]
            entries.append(entry)
        reply = sqs.send_message_batch(QueueUrl=source, Entries=entries)
        sent = {e["Id"] for e in reply.get("Successful", [])}
        _delete(sqs, dlq, [m for i, m in enumerate(messages) if str(i) in sent])
        moved += len(sent)
        failed += len(messages) - len(sent)  # left in the DLQ: visible again after the visibility timeout
    return moved, failed


def _move_task(
    sqs: Any, dlq_arn: str, source_arn: str, deadline: float, clock: Callable[[], float], sleep: Callable[[float], None]
) -> tuple[str, int] | None:
    """Run a message move task to the end (or the deadline): (status, moved); None where unavailable."""
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if any(c in str(err.get("Code", "")) for c in _UNAVAILABLE) or http in (500, 501):
            return None
        raise
    except (BotoCoreError, AttributeError, NotImplementedError):
        return None
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        status = str(task.get("Status", "UNKNOWN"))
        if status not in ("RUNNING", "CANCELLING") or clock() >= deadline:
            return status, int(task.get("ApproximateNumberOfMessagesMoved", 0))
        sleep(1.0)


def _redrive_dlq(
    target: Target,
    name: str,
    result: Result,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    sqs = target.client("sqs")
    dlq, source = target.queues[name], target.queues[DLQ_SOURCES[name]]
    depth = _depth(sqs, dlq)
    if depth == 0:
        result.check(name, True, "empty")
        return
    dlq_arn = _attr(sqs, dlq, "QueueArn")["QueueArn"]
    source_attrs = _attr(sqs, source, "QueueArn", "RedrivePolicy")
    policy = json.loads(source_attrs.get("RedrivePolicy") or "{}")
    if policy.get("deadLetterTargetArn") != dlq_arn:
        result.check(name, False, f"{DLQ_SOURCES[name]}'s redrive policy does not name {name}", "redeploy the stack")
        return
    task = _move_task(sqs, dlq_arn, source_attrs["QueueArn"], deadline, clock, sleep)
    if task is not None:
        status, moved = task
        ok = status == "COMPLETED"
        result.check(
            name,
            ok,
            f"move task {status}: {moved} of ~{depth} message(s) back to {DLQ_SOURCES[name]}",
            "" if ok else "see `aws sqs list-message-move-tasks`; run redrive again when it ends",
        )
        result.data[name] = {"method": "move-task", "status": status, "moved": moved}
        return
    moved, failed = _move_by_hand(sqs, dlq, source, deadline, clock)
    left = _depth(sqs, dlq)
    result.check(
        name,
        failed == 0 and moved > 0,
        f"{moved} message(s) back to {DLQ_SOURCES[name]} (receive/send/delete: no move tasks here), "
        f"{failed} not sent, ~{left} left",
        "" if failed == 0 else "run redrive again; check the source queue's permissions and size limits",
    )
    result.data[name] = {"method": "receive-send-delete", "moved": moved, "failed": failed}


def tick_time(body: str, sent_at_ms: str | None) -> datetime | None:
    """When the failed tick was due: the event's ``time`` (inside a Lambda destination record's
    ``requestPayload`` or not), else the record's ``timestamp``, else when SQS received the message;
    None when the body is no planning tick."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    payload = data.get("requestPayload", data) if "requestContext" in data else data
    if not isinstance(payload, dict) or payload.get("source") not in ("aws.scheduler", "aws.events"):
        return None
    for value in (payload.get("time"), data.get("timestamp")):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                continue
    if sent_at_ms and sent_at_ms.isdigit():
        return datetime.fromtimestamp(int(sent_at_ms) / 1000, UTC)
    return None


def tick_backfills(
    settings: Settings, when: datetime, zones: Mapping[str, ZoneInfo] | None = None
) -> list[BackfillMessage]:
    """The backfill per tenant for the window the tick at ``when`` stood for, on each tenant's own
    wall clock (``zones``; ``TENANT_TIMEZONE`` for a tenant not in it)."""
    out = []
    for tenant in settings.tenants:
        zone = (zones or {}).get(tenant, settings.zone)
        settled = settled_local(when, zone, settings.settle_minutes)
        end = floor_to_grid(settled, settings.window_minutes)
        begin = floor_to_grid(end - timedelta(seconds=1), settings.window_minutes)
        window = Window(begin, end - timedelta(seconds=1))
        out.append(
            BackfillMessage(
                accountId=None if tenant == ALL_ACCOUNTS else tenant,
                beginTime=window.begin_str,
                endTime=window.end_str,
            )
        )
    return out


def _replay_schedule_dlq(target: Target, result: Result, deadline: float, clock: Callable[[], float]) -> None:
    sqs = target.client("sqs")
    dlq, request = target.queues[SCHEDULE_DLQ], target.queues["RequestQueue"]
    budget = _depth(sqs, dlq)
    settings = settings_of(target) if budget else None
    zones = tenant_zones(target, settings) if settings is not None else {}
    sent: set[str] = set()
    replayed = 0
    unknown: list[str] = []
    seen = 0
    while settings is not None and seen < budget and clock() < deadline:
        messages = _receive(sqs, dlq)
        if not messages:
            break
        seen += len(messages)
        done = []
        for m in messages:
            when = tick_time(m["Body"], m.get("Attributes", {}).get("SentTimestamp"))
            if when is None:
                unknown.append(m["MessageId"])
                continue
            for backfill in tick_backfills(settings, when, zones):
                body = message_body(backfill)
                if body not in sent:
                    sqs.send_message(QueueUrl=request, MessageBody=body)
                    sent.add(body)
            done.append(m)
            replayed += 1
        _delete(sqs, dlq, done)
    if budget == 0:
        result.check(SCHEDULE_DLQ, True, "empty")
        return
    left = f"; {len(unknown)} message(s) are no planning tick, left in the queue: {', '.join(unknown[:5])}"
    result.check(
        SCHEDULE_DLQ,
        not unknown,
        f"{replayed} failed tick(s) replayed as {len(sent)} backfill(s) on RequestQueue" + (left if unknown else ""),
        "" if not unknown else "inspect them (aws sqs receive-message) and delete them by hand once understood",
    )
    result.data[SCHEDULE_DLQ] = {
        "replayed": replayed,
        "backfills": [json.loads(b) for b in sorted(sent)],
        "unknown": unknown,
    }


def run_redrive(
    target: Target,
    queue: str | None,
    timeout: float = 300.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    names = [queue] if queue else [*DLQ_SOURCES, SCHEDULE_DLQ]
    result = Result("redrive")
    deadline = clock() + timeout
    for name in names:
        if name not in target.queues:
            result.check(name, False, "the stack has no such queue", "redeploy the stack")
        elif name == SCHEDULE_DLQ:
            _replay_schedule_dlq(target, result, deadline, clock)
        else:
            _redrive_dlq(target, name, result, deadline, clock, sleep)
    return result


@click.command("redrive")
@click.argument("queue", required=False, type=click.Choice([*DLQ_SOURCES, SCHEDULE_DLQ]))
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True, help="seconds at most")
@click.pass_context
def command(ctx: click.Context, queue: str | None, timeout: float) -> None:
    """A DLQ back to its source (every DLQ when none is named); ScheduleDLQ's failed ticks as backfills."""
    finish(ctx, run_redrive(ctx.obj["target"](), queue, timeout))
