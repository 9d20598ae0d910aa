"""``aicc-export status [--tenant T] [--days N]``: where every tenant's export stands, and what needs
an operator.

Per tenant: the schedule's cursor; freshness (the age of the newest complete window: its job
COMPLETED or PARTIAL, or CC-FS had no data; the same reading as the ExportFreshnessHours metric);
jobs by state (those that ended COMPLETED/SUPERSEDED/UNSOLICITED over the last
``--days``; running, PARTIAL and FAILED ones whatever their age, until retried or re-exported);
FAILED windows and jobs; failed recordings with their reasons (and retries in flight); re-exports in
flight. For the stack: every queue's depth (and, on AWS, the age of its oldest message from
CloudWatch), the dead-letter queues, and the backfills request_export refused with their reasons.
Exits 1 when something needs attention, and says what to do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from aicc_export.cmd_backfill import jobs_table
from aicc_export.output import Result, finish
from aicc_export.stack_info import StackInfo, stack_info
from aicc_export.target import Target
from exporter.backfill_refusals import REASON_ATTRIBUTE, REFUSED_AT_ATTRIBUTE
from exporter.jobs.freshness import FreshnessReader
from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus, cursor_key
from exporter.jobs.queries import failed_recordings, is_job, items_in_state
from exporter.jobs.reexport import REEXPORT_SOURCE
from exporter.jobs.table import JobsTable
from exporter.planner import Window

__all__ = ["TenantStates", "command", "tenant_states"]

FRESHNESS_SCAN = 500
"""Windows read, newest first, to find the newest complete one (a tenant further behind shows none)."""
LISTED = 20
RUNNING = (JobStatus.REQUESTED, JobStatus.READY, JobStatus.DOWNLOADING)
ENDED = (JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.SUPERSEDED, JobStatus.UNSOLICITED)
DLQS = ("RequestDLQ", "BillDLQ", "RecordingDLQ", "ScheduleDLQ")


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 72 else f"{hours // 24} d"


def _window_end_utc(info: StackInfo, tenant: str, window: Window) -> datetime:
    return (window.end + timedelta(seconds=1)).replace(tzinfo=info.zones[tenant]).astimezone(UTC)


def _freshness(table: JobsTable, info: StackInfo, tenant: str, now: datetime) -> dict[str, Any] | None:
    """The newest complete window and its age, as the function's ExportFreshnessHours metric measures
    it (``exporter.jobs.freshness``: one definition for the alarm and for this command)."""
    measured = FreshnessReader(table, max_windows=FRESHNESS_SCAN).measure(tenant, info.zones[tenant], now)
    if not measured.complete:
        return None
    age = measured.hours * 3600
    return {"window": measured.newest_complete, "ageSeconds": int(age), "age": _age(age)}


@dataclass
class TenantStates:
    """What the ``by-status`` index says about one tenant."""

    jobs: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)
    """FAILED/CLAIMED windows and FAILED jobs that still are their window's export."""
    with_failures: list[Job] = field(default_factory=list)
    reexports: list[dict[str, Any]] = field(default_factory=list)


def _current(table: JobsTable, j: Job) -> tuple[bool, dict[str, Any] | None]:
    """Whether ``j`` is still its window's export (not replaced by a re-export or a new claim), and the window."""
    if not j.window_pk or not j.window_sk:
        return True, None
    window = table.get({"pk": j.window_pk, "sk": j.window_sk})
    return (window is None or window.get("response_id") == j.response_id), window


UNFIXED = (JobStatus.PARTIAL, JobStatus.FAILED)
"""Listed whatever their age until fixed (retried, re-exported): each is data missing from S3."""


def tenant_states(table: JobsTable, since: datetime) -> dict[str, TenantStates]:
    """Per tenant: jobs by state (running, PARTIAL and FAILED whatever their age, the others since
    ``since``), problems, jobs with failed recordings, re-exports in flight. A PARTIAL or FAILED job
    that is no longer its window's export (re-exported since) is left out."""
    out: dict[str, TenantStates] = {}
    for status in (*RUNNING, *ENDED, JobStatus.CLAIMED):
        always = status in RUNNING or status in UNFIXED or status is JobStatus.CLAIMED
        for raw in items_in_state(table, status, since=None if always else since):
            t = out.setdefault(str(raw.get("tenant") or "?"), TenantStates())
            if not is_job(raw):  # a window item: CLAIMED (being requested) or FAILED
                if raw.get("source") == REEXPORT_SOURCE and status is JobStatus.CLAIMED:
                    t.reexports.append({"window": raw.get("sk"), "since": raw.get("reexported_at"), "state": "CLAIMED"})
                else:
                    error = raw.get("error") or raw.get("last_error")
                    t.problems.append({"window": raw.get("sk"), "status": f"window {status.value}", "error": error})
                continue
            j = Job.from_item(raw)
            if status in RUNNING or status in UNFIXED:
                current, window = _current(table, j)
                if not current:
                    continue  # replaced by a re-export (or a new claim of its window)
                if status in RUNNING and window is not None and window.get("source") == REEXPORT_SOURCE:
                    t.reexports.append(
                        {"window": j.window_sk, "since": window.get("reexported_at"), "state": status.value}
                    )
            t.jobs[status.value] += 1
            if status is JobStatus.FAILED:
                t.problems.append(
                    {"window": j.window_sk, "status": "job FAILED", "responseId": j.response_id, "error": j.error}
                )
            elif j.recordings_failed > 0 and status in (JobStatus.PARTIAL, JobStatus.DOWNLOADING):
                t.with_failures.append(j)
    return out


def _queue_ages(target: Target, names: list[str]) -> dict[str, float | None]:
    """Age of each queue's oldest message (CloudWatch, AWS only; None where unknown)."""
    if target.is_local:
        return {}
    ages: dict[str, float | None] = {}
    try:
        cw = target.client("cloudwatch")
        end = datetime.now(UTC)
        for name in names:
            points = cw.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": name}],
                StartTime=end - timedelta(minutes=15),
                EndTime=end,
                Period=300,
                Statistics=["Maximum"],
            )["Datapoints"]
            ages[name] = max((p["Maximum"] for p in points), default=None)
    except (ClientError, BotoCoreError):
        return {}
    return ages


def _queues(target: Target) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    sqs = target.client("sqs")
    depths: dict[str, dict[str, Any]] = {}
    for logical, url in target.queues.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        depths[logical] = {
            "name": url.rstrip("/").rsplit("/", 1)[-1],
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "inFlight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }
    ages = _queue_ages(target, [d["name"] for d in depths.values()])
    for d in depths.values():
        d["oldestAgeSeconds"] = ages.get(d["name"])
    refused: list[dict[str, str]] = []
    dlq = target.queues.get("RequestDLQ")
    if dlq and depths.get("RequestDLQ", {}).get("visible"):
        # A peek: received with no visibility timeout, so the messages stay where they are.
        reply = sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        for m in reply.get("Messages", []):
            attrs = {k: v.get("StringValue", "") for k, v in (m.get("MessageAttributes") or {}).items()}
            refused.append(
                {
                    "messageId": m["MessageId"],
                    "reason": attrs.get(REASON_ATTRIBUTE)
                    or "(no reason: failed 5 deliveries; see request_export's logs)",
                    "refusedAt": attrs.get(REFUSED_AT_ATTRIBUTE, ""),
                    "body": m.get("Body", "")[:300],
                }
            )
    return depths, refused


@click.command("status")
@click.option("--tenant", default=None, help="only this tenant (accountId)")
@click.option(
    "--days", default=7, show_default=True, help="jobs that ended in the last N days (running, PARTIAL, FAILED: always)"
)
@click.pass_context
def command(ctx: click.Context, tenant: str | None, days: int) -> None:
    """Cursor, freshness, jobs, failures, re-exports and queues, per tenant; exit 1 when something needs you."""
    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--days")
    target: Target = ctx.find_root().obj["target"]()
    info = stack_info(target)
    chosen = info.pick(tenant)
    table = jobs_table(target)
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    states = tenant_states(table, since)
    result = Result("status", data={"tenants": []})
    for note in info.notes:
        result.lines.append(f"note: {note}")
    failed_total = in_flight_total = 0
    for t in chosen:
        mine = states.get(t, TenantStates())
        cursor = table.get(cursor_key(t))
        summary: dict[str, Any] = {
            "tenant": t,
            "zone": info.zones[t].key,
            "cursor": cursor.get("next_begin") if cursor else None,
            "freshness": _freshness(table, info, t, now),
            "jobs": dict(sorted(mine.jobs.items())),
            "problemWindows": mine.problems,
            "reexportsInFlight": mine.reexports,
        }
        failed: list[dict[str, Any]] = []
        for j in mine.with_failures:
            for rec in failed_recordings(table, j.response_id):
                failed.append(
                    {
                        "responseId": j.response_id,
                        "window": j.window_sk,
                        "callId": rec.call_id,
                        "fileName": rec.file_name,
                        "reason": rec.error,
                        "retryInFlightSince": rec.retry_at,
                        "retries": rec.retries,
                    }
                )
        summary["failedRecordings"] = failed
        waiting = [f for f in failed if not f["retryInFlightSince"]]
        failed_total += len(waiting)
        in_flight_total += len(failed) - len(waiting)
        result.data["tenants"].append(summary)
        fresh = summary["freshness"]
        result.lines.append(f"tenant {t} ({summary['zone']})")
        result.lines.append(f"  cursor      {summary['cursor'] or '(none yet: the schedule has not run)'}")
        shown = f"{fresh['age']} (newest complete window {fresh['window']})" if fresh else "no complete window yet"
        result.lines.append(f"  freshness   {shown}")
        result.lines.append(
            "  jobs        " + (", ".join(f"{k} {v}" for k, v in summary["jobs"].items()) or f"none in {days} d")
        )
        for w in summary["problemWindows"][:LISTED]:
            result.lines.append(
                f"  window      {w['window']} {w['status']}" + (f": {w['error']}" if w.get("error") else "")
            )
        for f in failed[:LISTED]:
            state = f"retry in flight since {f['retryInFlightSince']}" if f["retryInFlightSince"] else f["reason"]
            result.lines.append(f"  failed rec  {f['callId']}/{f['fileName']} (job {f['responseId']}): {state}")
        if len(failed) > LISTED:
            result.lines.append(f"  ... {len(failed) - LISTED} more failed recordings (--json lists all)")
        for r in summary["reexportsInFlight"]:
            result.lines.append(f"  re-export   {r['window']} since {r['since']}")
    depths, refused = _queues(target)
    result.data["queues"] = depths
    result.data["refusedBackfills"] = refused
    result.lines.append("queues")
    for logical, d in depths.items():
        age = "" if d["oldestAgeSeconds"] is None else f", oldest {_age(float(d['oldestAgeSeconds']))}"
        result.lines.append(
            f"  {logical:<15} {d['visible']} waiting, {d['inFlight']} in flight, {d['delayed']} delayed{age}"
        )
    for r in refused:
        result.lines.append(f"  refused backfill {r['messageId']} at {r['refusedAt']}: {r['reason']}")
    failed_windows = [w for t in chosen for w in states.get(t, TenantStates()).problems if "FAILED" in str(w["status"])]
    result.check(
        "no failed recordings",
        failed_total == 0,
        f"{failed_total} failed, {in_flight_total} retry in flight" if failed_total or in_flight_total else "none",
        "send them again: `aicc-export retry-failed" + (f" --tenant {tenant}" if tenant else "") + "`",
    )
    result.check(
        "no failed windows or jobs",
        not failed_windows,
        f"{len(failed_windows)} failed" if failed_windows else "none",
        "request them again: `aicc-export reexport WINDOW` (a failed window: `aicc-export backfill` of its days)",
    )
    dead = {q: depths[q]["visible"] + depths[q]["inFlight"] for q in DLQS if q in depths}
    full = {q: n for q, n in dead.items() if n}
    result.check(
        "dead-letter queues empty",
        not full,
        ", ".join(f"{q} {n}" for q, n in full.items()) or "all empty",
        "read the reasons above (refused backfills: fix the body and send it again) and the functions' logs; "
        "then `aicc-export redrive QUEUE`",
    )
    finish(ctx, result)
