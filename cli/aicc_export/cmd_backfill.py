"""``aicc-export backfill FROM TO [--tenant T] [--wait]``: export past days again, window by window.

Validated here before anything is sent (dates, order, a day that is over in the tenant's time zone,
a tenant the stack exports), split into the planner's windows of at most 3 days
(``exporter.planner.split_range``, tenant-local) and sent to RequestQueue as one
``BackfillMessage`` per window (``exporter.messages``: the contract request_export parses). Windows
exported already are skipped by request_export (said so here, and counted there): ``aicc-export
reexport`` requests them again. ``--wait`` follows every window sent until it is done.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import click

from aicc_export.output import Result, finish
from aicc_export.params import DAY
from aicc_export.stack_info import StackInfo, stack_info
from aicc_export.target import Target, TargetError
from aicc_export.tracking import Tracker
from exporter.jobs.keys import JobStatus
from exporter.jobs.queries import job, window_views
from exporter.jobs.reexport import ExportState, export_state
from exporter.jobs.table import JobsTable
from exporter.messages import BackfillMessage, message_body
from exporter.planner import Window, settled_local, split_range

__all__ = ["command", "follow", "jobs_table", "one_tenant", "plan", "send_windows"]


def jobs_table(target: Target) -> JobsTable:
    return JobsTable(target.client("dynamodb"), target.jobs_table)


def one_tenant(info: StackInfo, tenant: str | None) -> str:
    """The tenant a backfill is for: ``--tenant`` (known to the stack), or the stack's only one."""
    if tenant is None:
        if len(info.tenants) > 1:
            raise click.UsageError(
                f"this stack exports {len(info.tenants)} tenants ({', '.join(info.tenants)}): pass --tenant"
            )
        return info.tenants[0]
    return info.pick(tenant)[0]


def plan(info: StackInfo, tenant: str, first: date, last: date, now: datetime) -> list[Window]:
    """The windows of [first 00:00:00, last 23:59:59], tenant-local; refuses a range not over yet."""
    if last < first:
        raise click.BadParameter(f"TO {last} is before FROM {first}", param_hint="TO")
    zone = info.zones[tenant]
    settled = settled_local(now, zone, info.settle_minutes)
    end = datetime.combine(last, time(23, 59, 59))
    if end >= settled:
        raise click.BadParameter(
            f"{last} is not over yet in {zone.key} (settled until {settled:%Y-%m-%d %H:%M}, SettleMinutes="
            f"{info.settle_minutes}): the schedule exports it; pick a TO before that",
            param_hint="TO",
        )
    windows, _rest = split_range(datetime.combine(first, time(0, 0, 0)), end)
    return windows


def send_windows(
    target: Target, info: StackInfo, tenant: str, windows: list[Window], *, reexport: str | None = None
) -> list[dict[str, str]]:
    """One RequestQueue message per window; the message ids."""
    url = target.queues.get("RequestQueue")
    if not url:
        raise TargetError("the stack has no RequestQueue (RequestQueueUrl output)")
    sqs = target.client("sqs")
    sent = []
    for window in windows:
        message = BackfillMessage.model_validate(
            {
                "accountId": info.account_id(tenant),
                "beginTime": window.begin_str,
                "endTime": window.end_str,
                **({"reexport": reexport} if reexport else {}),
            }
        )
        reply = sqs.send_message(QueueUrl=url, MessageBody=message_body(message))
        sent.append({"window": window.sk, "messageId": str(reply["MessageId"])})
    return sent


def follow(result: Result, tracker: Tracker, timeout: float, *, show: bool) -> None:
    """``--wait``: the progress bar until every window is done; checks and data for the result."""
    try:
        finished = tracker.wait(timeout, bar=show)
    except KeyboardInterrupt:
        click.echo(
            "\nstopped waiting: the work goes on in the stack; `aicc-export status` shows where it stands", err=True
        )
        raise click.exceptions.Exit(130) from None
    summary = tracker.summary()
    result.data["progress"] = summary
    result.data["windowStates"] = [tracker.states[sk].as_dict() for sk in tracker.sks if sk in tracker.states]
    result.check(
        "every window done",
        finished,
        f"{summary['windowsDone']}/{summary['windows']} windows done" + ("" if finished else f" after {timeout:g} s"),
        "still running: `aicc-export status` follows it (nothing is lost by not waiting)",
    )
    failed = [s for s in tracker.states.values() if s.finished and not s.ok]
    result.check(
        "nothing failed",
        not failed,
        "; ".join(f"{s.sk}: {s.job_status or s.state}" + (f" ({s.error})" if s.error else "") for s in failed)
        or f"{summary['recordingsDone']} recordings, {summary['cdrRows']} CDR rows",
        "PARTIAL: `aicc-export retry-failed`; FAILED: `aicc-export reexport` or backfill it again",
    )
    for state in (tracker.states[sk] for sk in tracker.sks if sk in tracker.states):
        result.lines.append(
            f"  {state.sk}  {state.job_status or state.state:<11} rows {state.cdr_rows:>6}  recordings "
            f"{state.recordings_done}/{state.recordings_total} ({state.recordings_failed} failed)"
        )


@click.command("backfill")
@click.argument("first", metavar="FROM", type=DAY)
@click.argument("last", metavar="TO", type=DAY)
@click.option("--tenant", default=None, help="the tenant (accountId); required when the stack exports several")
@click.option("--wait", "wait", is_flag=True, help="follow the windows until done (Ctrl-C stops waiting, not the work)")
@click.option(
    "--timeout", default=0.0, show_default=True, help="with --wait: give up waiting after this many seconds (0: never)"
)
@click.pass_context
def command(ctx: click.Context, first: date, last: date, tenant: str | None, wait: bool, timeout: float) -> None:
    """Export the tenant-local days FROM..TO (YYYY-MM-DD) again: ≤3-day windows sent to RequestQueue."""
    begin, end = first, last
    target: Target = ctx.find_root().obj["target"]()
    info = stack_info(target)
    chosen = one_tenant(info, tenant)
    windows = plan(info, chosen, begin, end, datetime.now(UTC))
    table = jobs_table(target)
    existing = window_views(table, chosen, [w.sk for w in windows])
    exported = [
        sk
        for sk, view in existing.items()
        if view is not None
        and export_state(view.item, job(table, view.item.response_id) if view.item.response_id else None)
        is ExportState.EXPORTED
    ]
    sent = send_windows(target, info, chosen, windows)
    result = Result("backfill", data={"tenant": chosen, "from": str(begin), "to": str(end), "sent": sent})
    result.data["exportedAlready"] = exported
    for note in info.notes:
        result.lines.append(f"note: {note}")
    result.lines.append(f"tenant {chosen} ({info.zones[chosen].key}): {len(sent)} window(s) sent to RequestQueue")
    for entry in sent:
        mark = (
            "  (exported already: skipped; `aicc-export reexport` requests it again)"
            if entry["window"] in exported
            else ""
        )
        result.lines.append(f"  {entry['window']}{mark}")
    result.check("windows sent", bool(sent), f"{len(sent)} message(s)")
    if wait:
        failed_before = {
            sk: view.item.status_at
            for sk, view in existing.items()
            if view is not None and view.item.job_status is JobStatus.FAILED
        }
        tracker = Tracker(table, chosen, [w.sk for w in windows], failed_before=failed_before)
        follow(result, tracker, timeout, show=not ctx.find_root().obj.get("json"))
    else:
        result.lines.append("follow it with `aicc-export status` (or run with --wait)")
    finish(ctx, result)
