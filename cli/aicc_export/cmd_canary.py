"""``aicc-export canary``: request one small past window and follow it hop by hop.

requested -> callback -> bill -> recordings -> manifest, each with the time it took, read from the
jobs table (:class:`exporter.jobs.lookup.JobLookup`) and the manifest in S3. A hop not reached within
``--timeout`` is where it stalled: the command says which, what the job item says, and exits 1.

The window is the first ``--minutes`` slice of ``--date`` (default: yesterday in the stack's tenant
time zone) that has no window item yet, so a repeated canary asks CC-FS for a fresh window instead of
being skipped as a repeat backfill. Its rows are a real export of that slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import click
from botocore.exceptions import ClientError

from aicc_export.deployment import settings_of, tenants_of, yesterday
from aicc_export.output import Result, finish
from aicc_export.params import DAY
from aicc_export.target import Target
from exporter import layout
from exporter.config import ALL_ACCOUNTS
from exporter.jobs.items import Job, WindowItem
from exporter.jobs.keys import JobStatus
from exporter.jobs.lookup import JobLookup
from exporter.messages import BackfillMessage, message_body
from exporter.planner import Window

__all__ = ["HOPS", "Canary", "command", "pick_window"]

HOPS = ("requested", "callback", "bill", "recordings", "manifest")
_DONE = {JobStatus.COMPLETED, JobStatus.PARTIAL}
_FIXES = {
    "requested": "RequestExportFunction did not request the window: see its logs, RequestQueue and RequestDLQ "
    "(`aicc-export status`), and run `aicc-export doctor`",
    "callback": "CC-FS has not called back: it must reach and trust the callback URL (README, 'CC-FS must trust "
    "the callback URL's certificate'); the reconciler re-requests after CallbackTimeoutMinutes",
    "bill": "the bill step has not finished: see DownloadFunction's logs and BillQueue/BillDLQ",
    "recordings": "recordings are still being copied (late ones retry for RecordingGraceHours): see "
    "RecordingQueue/RecordingDLQ; a longer --timeout may be all it needs",
    "manifest": "the job has not completed: see DownloadFunction's logs",
}


def pick_window(lookup: JobLookup, tenant: str, day: date, minutes: int, start: dt_time = dt_time(10)) -> Window:
    """The first ``minutes``-long slice of ``day`` from ``start`` on without a window item (bounded:
    one day's slices)."""
    step = timedelta(minutes=minutes)
    begin = datetime.combine(day, start)
    while begin.date() == day:
        window = Window(begin, begin + step - timedelta(seconds=1))
        if lookup.window(tenant, window) is None:
            return window
        begin += step
    raise click.ClickException(
        f"every {minutes}-minute slice of {day} from {start:%H:%M} on already has a window for {tenant}: "
        "pass another --date or --start"
    )


@dataclass
class Canary:
    """The state of one canary: which hops were reached, when, and what the items said."""

    tenant: str
    window: Window
    reached: dict[str, float] = field(default_factory=dict)  # hop -> seconds after sending
    notes: dict[str, str] = field(default_factory=dict)
    response_id: str | None = None
    failed: str | None = None  # the job's error when it FAILED
    no_data: bool = False  # CC-FS answered "no data" (0300012) for the window: nothing to follow

    def observe(self, elapsed: float, item: WindowItem | None, job: Job | None, manifest: bool) -> None:
        def reach(hop: str, note: str = "") -> None:
            if hop not in self.reached:
                self.reached[hop] = elapsed
                if note:
                    self.notes[hop] = note

        if item is not None and item.last_error:
            self.notes.setdefault("requested", f"window {item.job_status}: last error {item.last_error}")
        if item is not None and item.no_data:
            reach("requested", "CC-FS answered 0300012 (no data) for this window")
            self.no_data = True
        if job is None:
            return
        self.response_id = job.response_id
        reach("requested", f"responseId {job.response_id} at {job.requested_at}")
        if job.job_status is JobStatus.FAILED:
            self.failed = job.error or "FAILED without a reason"
        if job.callback_at:
            reach("callback", f"bill {job.bill_file_name or '?'} at {job.callback_at}")
        if job.bill_processed_at:
            reach("bill", f"{job.cdr_rows} CDR rows, {job.recordings_total} recordings at {job.bill_processed_at}")
            if job.recordings_done + job.recordings_failed >= job.recordings_total:
                reach("recordings", f"{job.recordings_done} copied, {job.recordings_failed} failed")
        if job.job_status in _DONE and manifest:
            reach("manifest", f"{job.job_status.value} at {job.completed_at}, {layout.manifest_key(job.response_id)}")

    @property
    def done(self) -> bool:
        return "manifest" in self.reached or self.failed is not None or self.no_data

    def result(self, timeout: float) -> Result:
        result = Result("canary")
        previous = 0.0
        for hop in HOPS:
            if hop in self.reached:
                took = self.reached[hop] - previous
                previous = self.reached[hop]
                detail = f"+{took:.1f} s (at {self.reached[hop]:.1f} s)" + (
                    f": {self.notes[hop]}" if hop in self.notes else ""
                )
                result.check(hop, True, detail)
                continue
            if self.no_data:
                result.check(
                    hop,
                    False,
                    "CC-FS has no calls in this window, so there is nothing to follow",
                    "pick a busy slice: --date with traffic, --start at a busy hour, a longer --minutes",
                )
            elif self.failed is not None:
                result.check(hop, False, f"job {self.response_id} FAILED: {self.failed}", _FIXES[hop])
            else:
                note = f"; {self.notes[hop]}" if hop in self.notes else ""
                result.check(hop, False, f"stalled here: not reached within {timeout:g} s{note}", _FIXES[hop])
            break
        result.data.update(
            {
                "tenant": self.tenant,
                "window": {"begin": self.window.begin_str, "end": self.window.end_str},
                "response_id": self.response_id,
                "hops": {hop: self.reached.get(hop) for hop in HOPS},
                "stalled_at": next((h for h in HOPS if h not in self.reached), None),
            }
        )
        result.lines.append(f"canary window {self.window.begin_str} .. {self.window.end_str} ({self.tenant})")
        return result


def _manifest_exists(target: Target, response_id: str) -> bool:
    try:
        target.client("s3").head_object(Bucket=target.bucket, Key=layout.manifest_key(response_id))
    except ClientError:
        return False
    return True


def run_canary(
    target: Target,
    tenant: str | None,
    day: date | None,
    timeout: float,
    *,
    minutes: int = 10,
    start: dt_time = dt_time(10),
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    settings = settings_of(target)
    chosen = tenants_of(target, tenant)[0]
    day = day or yesterday(settings.tenant_timezone)
    lookup = JobLookup(target.client("dynamodb"), target.jobs_table)
    window = pick_window(lookup, chosen, day, minutes, start)
    message = BackfillMessage(
        accountId=None if chosen == ALL_ACCOUNTS else chosen, beginTime=window.begin_str, endTime=window.end_str
    )
    target.client("sqs").send_message(QueueUrl=target.queues["RequestQueue"], MessageBody=message_body(message))
    canary = Canary(chosen, window)
    started = clock()
    while True:
        elapsed = clock() - started
        item = lookup.window(chosen, window)
        job = lookup.job(item.response_id) if item is not None and item.response_id else None
        done = job is not None and job.job_status in _DONE and _manifest_exists(target, job.response_id)
        canary.observe(elapsed, item, job, done)
        if canary.done or elapsed >= timeout:
            return canary.result(timeout)
        sleep(interval)


@click.command("canary")
@click.option("--tenant", default=None, help="the tenant (accountId) to request; default: the first configured")
@click.option("--date", "day", type=DAY, default=None, help="tenant-local day of the window (default: yesterday)")
@click.option("--start", default="10:00", show_default=True, help="tenant-local HH:MM the window starts at (or after)")
@click.option("--minutes", type=click.IntRange(1, 180), default=10, show_default=True, help="window length")
@click.option("--timeout", type=click.FloatRange(min=1), default=900.0, show_default=True, help="seconds to follow")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="poll period (s)")
@click.pass_context
def command(
    ctx: click.Context,
    tenant: str | None,
    day: date | None,
    start: str,
    minutes: int,
    timeout: float,
    interval: float,
) -> None:
    """Request one small past window and follow it: requested -> callback -> bill -> recordings -> manifest."""
    target: Any = ctx.obj["target"]()
    try:
        at = dt_time.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not HH:MM", param_hint="--start") from None
    finish(ctx, run_canary(target, tenant, day, timeout, minutes=minutes, start=at, interval=interval))
