"""``aicc-export reexport`` and ``aicc-export retry-failed``: the two ways back from a bad export.

``reexport WINDOW|--date D [--tenant T] [--wait]`` requests exported windows from CC-FS again: one
``BackfillMessage`` per window with a fresh ``reexport`` token (request_export re-claims each window
once per token, see ``exporter.jobs.reexport``). The new job's bill replaces the window's CDR and
index objects (the replaced job's are removed), recordings already in S3 stay as they are (the copy
of a recording that is there is a duplicate). A window whose export is still running is not sent.

``retry-failed [JOB] [--tenant T] [--date D]`` sends the FAILED recordings of PARTIAL jobs again
(``exporter.operator_actions.retry_failed_recordings``); a success turns the job COMPLETED.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import click

from aicc_export.cmd_backfill import follow, jobs_table, one_tenant, send_windows
from aicc_export.output import Result, finish
from aicc_export.params import DAY
from aicc_export.stack_info import stack_info
from aicc_export.target import Target, TargetError
from aicc_export.tracking import Tracker
from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus
from exporter.jobs.queries import WindowView, is_job, items_in_state, job, windows
from exporter.jobs.reexport import ExportState, export_state
from exporter.jobs.table import JobsTable
from exporter.messages import RecordingMessage, message_body
from exporter.operator_actions import retry_failed_recordings
from exporter.planner import Window

__all__ = ["commands", "reexport", "retry_failed"]


def _window_arg(value: str) -> Window:
    try:
        return Window.from_sk(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a window: 'yyyy-MM-dd HH:mm:ss|yyyy-MM-dd HH:mm:ss' as `aicc-export status` lists it",
            param_hint="WINDOW",
        ) from None


def _windows_of_day(table: JobsTable, tenant: str, day: date) -> list[WindowView]:
    begin = f"{day.isoformat()} 00:00:00"
    out = []
    for view in windows(table, tenant, newest_first=False, begin_from=begin):
        if not view.sk.startswith(day.isoformat()):
            break
        out.append(view)
    return out


@click.command("reexport")
@click.argument("window", required=False)
@click.option(
    "--date",
    "day",
    type=DAY,
    default=None,
    help="every exported window beginning on this tenant-local day (YYYY-MM-DD)",
)
@click.option("--tenant", default=None, help="the tenant (accountId); required when the stack exports several")
@click.option("--wait", is_flag=True, help="follow the windows until done (Ctrl-C stops waiting, not the work)")
@click.option("--timeout", default=0.0, help="with --wait: give up waiting after this many seconds (0: never)")
@click.pass_context
def reexport(
    ctx: click.Context, window: str | None, day: date | None, tenant: str | None, wait: bool, timeout: float
) -> None:
    """Request exported windows from CC-FS again (safe to repeat; the window's CDR objects are replaced)."""
    if (window is None) == (day is None):
        raise click.UsageError("give either WINDOW (as `aicc-export status` lists it) or --date YYYY-MM-DD")
    target: Target = ctx.find_root().obj["target"]()
    info = stack_info(target)
    chosen = one_tenant(info, tenant)
    table = jobs_table(target)
    if window is not None:
        wanted = _window_arg(window)
        views = [
            v
            for v in windows(table, chosen, newest_first=False, begin_from=wanted.begin_str, limit=1)
            if v.sk == wanted.sk
        ]
        if not views:
            raise TargetError(f"tenant {chosen} has no window {wanted.sk}: `aicc-export backfill` exports a new range")
    else:
        assert day is not None  # one of the two, checked above
        the_day = day
        views = _windows_of_day(table, chosen, the_day)
        if not views:
            raise TargetError(
                f"tenant {chosen} has no window beginning on {the_day}: `aicc-export backfill` exports it"
            )
    ready: list[WindowView] = []
    busy: list[WindowView] = []
    for view in views:
        current = job(table, view.item.response_id) if view.item.response_id else None
        (ready if export_state(view.item, current) is ExportState.EXPORTED else busy).append(view)
    token = uuid.uuid4().hex
    sent = send_windows(target, info, chosen, [v.item.claim.window for v in ready], reexport=token) if ready else []
    result = Result("reexport", data={"tenant": chosen, "token": token, "sent": sent, "running": [v.sk for v in busy]})
    result.lines.append(f"tenant {chosen}: {len(sent)} window(s) re-export requested (token {token})")
    for view in ready:
        result.lines.append(f"  {view.sk}  replaces job {view.item.response_id or '(no data)'}")
    for view in busy:
        result.lines.append(f"  {view.sk}  export still running: not sent (run it again once it ended)")
    result.check(
        "re-exports sent",
        bool(sent) or not busy,
        f"{len(sent)} sent, {len(busy)} still running",
        "wait for the running exports (`aicc-export status`), then run this again",
    )
    if wait and ready:
        follow(
            result,
            Tracker(table, chosen, [v.sk for v in ready], token),
            timeout,
            show=not ctx.find_root().obj.get("json"),
        )
    finish(ctx, result)


def _jobs_to_retry(table: JobsTable, tenant: str | None, day: str | None) -> list[Job]:
    found = []
    for status in (JobStatus.PARTIAL, JobStatus.DOWNLOADING):
        for raw in items_in_state(table, status):
            if not is_job(raw):
                continue
            j = Job.from_item(raw)
            if j.recordings_failed <= 0 or (tenant and j.tenant != tenant):
                continue
            if day and not str(j.begin_time or "").startswith(day):
                continue
            found.append(j)
    return found


@click.command("retry-failed")
@click.argument("job_id", metavar="[JOB]", required=False)
@click.option("--tenant", default=None, help="only this tenant's jobs (without JOB)")
@click.option(
    "--date", "day", type=DAY, default=None, help="only jobs whose window begins on this tenant-local day (without JOB)"
)
@click.pass_context
def retry_failed(ctx: click.Context, job_id: str | None, tenant: str | None, day: date | None) -> None:
    """Send the FAILED recordings of a PARTIAL job (or of every such job) again; safe to repeat."""
    target: Target = ctx.find_root().obj["target"]()
    table = jobs_table(target)
    if tenant is not None:
        stack_info(target).pick(tenant)
    ids = (
        [job_id]
        if job_id is not None
        else [j.response_id for j in _jobs_to_retry(table, tenant, day.isoformat() if day else None)]
    )
    url = target.queues.get("RecordingQueue")
    if not url:
        raise TargetError("the stack has no RecordingQueue (RecordingQueueUrl output)")
    sqs = target.client("sqs")

    def send(message: RecordingMessage) -> None:
        sqs.send_message(QueueUrl=url, MessageBody=message_body(message))

    now = datetime.now(UTC)
    reports = [retry_failed_recordings(table, send, rid, now) for rid in ids]
    result = Result("retry-failed", data={"jobs": [r.as_dict() for r in reports]})
    if not ids:
        result.lines.append("no PARTIAL job with failed recordings" + (f" for tenant {tenant}" if tenant else ""))
    for r in reports:
        result.lines.append(
            f"job {r.response_id} ({r.job_status or 'missing'}): {len(r.sent)} sent again, "
            f"{len(r.in_flight)} already in flight, {len(r.not_retryable)} not retryable"
        )
        for name in r.sent:
            result.lines.append(f"  sent    {name}")
        for name in r.in_flight:
            result.lines.append(f"  waiting {name} (retry in flight)")
        for name, why in r.not_retryable.items():
            result.lines.append(f"  skipped {name}: {why}")
    refused = [r for r in reports if r.refused]
    result.check(
        "jobs retryable",
        not refused,
        "; ".join(f"{r.response_id}: {r.refused}" for r in refused) or f"{len(reports)} job(s)",
        "a FAILED job's window is exported again with `aicc-export reexport`",
    )
    stuck = {name: why for r in reports for name, why in r.not_retryable.items()}
    result.check(
        "every failed recording sent again",
        not stuck,
        f"{len(stuck)} could not be"
        if stuck
        else f"{sum(len(r.sent) for r in reports)} sent, {sum(len(r.in_flight) for r in reports)} in flight",
        "re-export their windows: `aicc-export reexport --date D`",
    )
    if any(r.sent for r in reports):
        result.lines.append("the download function copies them now; `aicc-export status` shows the jobs turn COMPLETED")
    finish(ctx, result)


commands = [reexport, retry_failed]
