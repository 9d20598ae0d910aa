"""request_export's domain: the schedule tick, the reconciler and backfill messages.

Nothing here reads the environment, the wall clock or AWS directly: a :class:`RequestContext`
carries the settings, the jobs store, a CC-FS client provider, a clock, the queue senders and the
invocation's time budget, so tests drive every path with fakes and a fixed ``now``.

Error policy for ``queryBillData`` (the client has already retried transient failures):

- transient (5xx, timeouts, flow control), an undocumented resultCode (protocol §7: never fail a
  window on first sight; ``CcfsUnknownResultCode`` is counted by the client's hook and alarmed) or
  a malformed reply: the window stays ``CLAIMED`` with ``last_error``; the reconciler asks again on
  a later tick (every ``CLAIM_RETRY_MINUTES``) and fails it after ``STALLED_JOB_HOURS``; CC-FS is
  left alone for the rest of this invocation. Metric ``CcfsErrors``.
- "no data found" (0300012): the window is done, without a job (``no_data``).
- permanent (0300001-7, 0300010, a responseId the exporter cannot use): the window becomes
  ``FAILED`` with the error, metric
  ``JobsFailed``; the tenant stops for this tick so a systematic error fails one window per tick,
  not a whole catch-up.
- signature rejected (HTTP 401): every further call would fail the same way and the cause is the
  credentials or the clock, not the window: the window stays ``CLAIMED`` (nothing is lost once it is
  fixed), everything stops, and the invocation fails (function-error alarm; SQS redelivers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ccfs.errors import CcfsAuthError, CcfsError, CcfsNotFound, CcfsPermanentError
from ccfs.models import TIME_FORMAT, parse_time
from exporter.callbacks import BillSender, promote_early_callback
from exporter.config import ALL_ACCOUNTS, ConfigError, Settings
from exporter.jobs.freshness import Freshness, FreshnessReader
from exporter.jobs.items import Job, NewJob, WindowClaim, WindowItem
from exporter.jobs.keys import JobStatus, tenant_of_window
from exporter.jobs.reexport import REEXPORT_SOURCE, ExportState, WindowReexports, export_state
from exporter.jobs.store import JobStore, RecordResult
from exporter.messages import BackfillMessage, validation_reason
from exporter.planner import Window, initial_cursor, next_grid_start, plan_windows, settled_local, split_range

__all__ = [
    "CLAIM_RETRY_MINUTES",
    "Backfill",
    "BackfillRetry",
    "BillRequester",
    "InvalidBackfill",
    "Report",
    "RequestContext",
    "RequestOutcome",
    "handle_backfill",
    "handle_backfill_message",
    "parse_backfill",
    "planning_lag_minutes",
    "reconcile",
    "request_claimed_window",
    "run_tick",
    "schedule_tenant",
]

logger = logging.getLogger("exporter.requesting")

CLAIM_RETRY_MINUTES = 5
"""A window still CLAIMED after this long was left by a crash or a transient error: ask again."""

MIN_TIME_LEFT_MS = 60_000
"""Stop starting CC-FS calls when less than this is left of the invocation (one call with the
client's retries must still fit)."""

SCHEDULE_DATA_TYPE = "call_record"


class BillRequester(Protocol):
    """The part of ``ccfs.client.CcfsClient`` this module uses."""

    def query_bill_data(
        self,
        begin: datetime,
        end: datetime,
        *,
        data_type: str = "call_record",
        callback_url: str,
        account_id: str | None = None,
    ) -> str: ...


@dataclass
class RequestContext:
    settings: Settings
    store: JobStore
    ccfs: Callable[[str], BillRequester]
    """Returns the tenant's CC-FS client (signed with that tenant's ak/sk); called with the tenant
    key only when a request is about to be made (lazy secrets)."""
    clock: Callable[[], datetime]
    """Aware UTC now."""
    send_request: Callable[[BackfillMessage], None]
    """Sends a RequestQueue message (backfill continuation)."""
    send_bill: BillSender
    """Sends a BillQueue message (a callback that beat its request, see ``promote_early_callback``)."""
    measure_freshness: bool = False
    """Schedule ticks read each tenant's newest complete window (``Report.freshness``) from the
    store's table; off unless the handler asks (the domain tests count the table's requests)."""
    time_left_ms: Callable[[], int] = lambda: 900_000
    zone: Callable[[str], ZoneInfo] | None = None
    """The tenant's time zone (its windows are planned in it); None: every tenant in TENANT_TIMEZONE."""
    refuse_backfill: Callable[[str, str, str], None] | None = None
    """Moves a RequestQueue body that can never be processed to the RequestDLQ with the reason
    (body, reason, message id; ``exporter.backfill_refusals``). None: the record fails instead and
    SQS moves it there after ``maxReceiveCount`` deliveries."""
    reexports: WindowReexports | None = None
    """Re-claims an exported window for a re-export (``exporter.jobs.reexport``); None: re-export
    messages fail (a configuration error)."""

    def zone_of(self, tenant: str) -> ZoneInfo:
        return self.settings.zone if self.zone is None else self.zone(tenant)

    def out_of_time(self) -> bool:
        return self.time_left_ms() < MIN_TIME_LEFT_MS


@dataclass
class Report:
    """What an invocation did; the handler turns the counters into metrics."""

    requested: int = 0
    re_requested: int = 0
    failed: int = 0
    ccfs_errors: int = 0
    no_data: int = 0
    skipped: int = 0
    lost_races: int = 0
    backfill_refused: int = 0
    already_exported: int = 0
    """Backfill windows skipped because they were exported already (no re-export token)."""
    reexported: int = 0
    reexport_busy: int = 0
    """Re-exports not started: the window's export was still running."""
    continuations: int = 0
    ccfs_paused: bool = False
    """A transient CC-FS error happened: make no further CC-FS calls in this invocation."""
    auth_error: CcfsAuthError | None = None
    planning_lag_minutes: float | None = None
    """Schedule ticks only: over all tenants, the longest a due window has waited to be claimed
    (0 when every tenant is caught up). The heartbeat alarm watches it (template.yaml)."""
    freshness: list[Freshness] = field(default_factory=list)
    """Schedule ticks only: each tenant's age of its newest complete window (ExportFreshnessHours,
    per tenant and the stalest; FreshnessAlarm)."""

    METRICS = (
        ("requested", "JobsRequested"),
        ("re_requested", "JobsReRequested"),
        ("failed", "JobsFailed"),
        ("ccfs_errors", "CcfsErrors"),
        ("backfill_refused", "BackfillRefused"),  # alarmed
        ("already_exported", "BackfillWindowsAlreadyExported"),
        ("reexported", "WindowsReexported"),
        ("reexport_busy", "ReexportsNotStarted"),
    )

    def metrics(self) -> dict[str, int]:
        """Counters by metric name (docs/design.md): ``JobsRequested`` always (a heartbeat), the
        others when non-zero."""
        return {
            name: getattr(self, attr) for attr, name in self.METRICS if getattr(self, attr) or name == "JobsRequested"
        }

    def summary(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "reRequested": self.re_requested,
            "failed": self.failed,
            "ccfsErrors": self.ccfs_errors,
            "noData": self.no_data,
            "skipped": self.skipped,
            "lostRaces": self.lost_races,
        }

    @property
    def stopped(self) -> bool:
        return self.auth_error is not None


class RequestOutcome(StrEnum):
    REQUESTED = "REQUESTED"
    NO_DATA = "NO_DATA"
    TRANSIENT = "TRANSIENT"
    PERMANENT = "PERMANENT"
    AUTH = "AUTH"
    LOST = "LOST"
    """Another worker recorded the window first; our responseId is an orphan (its callback will be
    UNSOLICITED)."""


def _account_for(tenant: str) -> str | None:
    return None if tenant == ALL_ACCOUNTS else tenant


def _describe(window: Window) -> str:
    return f"{window.begin_str}..{window.end_str}"


# ---------------------------------------------------------------------------- one request


def _ask(ctx: RequestContext, claim: WindowClaim) -> str:
    if not ctx.settings.callback_url:
        raise ConfigError("CALLBACK_URL is not set: CC-FS would have nowhere to send the bill file name")
    return ctx.ccfs(claim.tenant).query_bill_data(
        claim.window.begin,
        claim.window.end,
        data_type=claim.data_type,
        callback_url=ctx.settings.callback_url,
        account_id=claim.account_id,
    )


def _classify(ctx: RequestContext, claim: WindowClaim, exc: CcfsError, now: datetime, report: Report) -> RequestOutcome:
    """Apply the error policy of the module docstring to a CLAIMED window."""
    where = {"tenant": claim.tenant, "window": _describe(claim.window), "operation": exc.operation, "code": exc.code}
    if isinstance(exc, CcfsAuthError):
        report.ccfs_errors += 1
        report.auth_error = exc
        ctx.store.note_window_error(claim, str(exc), now)
        logger.error("CC-FS rejected our signature: check the ak/sk secret and the clock", extra=where)
        return RequestOutcome.AUTH
    if isinstance(exc, CcfsNotFound):
        report.no_data += 1
        ctx.store.window_no_data(claim, now)
        logger.info("CC-FS has no data for this window", extra=where)
        return RequestOutcome.NO_DATA
    if isinstance(exc, CcfsPermanentError):
        report.failed += 1
        ctx.store.fail_window(claim, str(exc), now)
        logger.error("queryBillData refused the window for good: window FAILED", extra={**where, "error": str(exc)})
        return RequestOutcome.PERMANENT
    report.ccfs_errors += 1
    report.ccfs_paused = True
    ctx.store.note_window_error(claim, str(exc), now)
    logger.warning("CC-FS unavailable: window stays CLAIMED for the reconciler", extra={**where, "error": str(exc)})
    return RequestOutcome.TRANSIENT


def request_claimed_window(ctx: RequestContext, claim: WindowClaim, now: datetime, report: Report) -> RequestOutcome:
    """Call queryBillData for a window this worker holds (claimed or leased), record the job."""
    try:
        response_id = _ask(ctx, claim)
    except CcfsError as exc:
        return _classify(ctx, claim, exc, now, report)
    job = NewJob(response_id=response_id, claim=claim, attempt=1)
    result = ctx.store.record_requested(job, now)
    if result is RecordResult.JOB_EXISTS and ctx.store.link_existing_job(job, now):
        promote_early_callback(ctx.store, ctx.send_bill, response_id, now)
        result = RecordResult.RECORDED
    if result is not RecordResult.RECORDED:
        report.lost_races += 1
        logger.warning(
            "window was recorded by another worker; this request is an orphan",
            extra={"tenant": claim.tenant, "window": _describe(claim.window), "responseId": response_id},
        )
        return RequestOutcome.LOST
    report.requested += 1
    logger.info(
        "requested bill data",
        extra={"tenant": claim.tenant, "window": _describe(claim.window), "responseId": response_id},
    )
    return RequestOutcome.REQUESTED


# ---------------------------------------------------------------------------- schedule tick


def _export_start(settings: Settings) -> datetime | None:
    if not settings.export_start_time:
        return None
    return datetime.strptime(settings.export_start_time, "%Y-%m-%dT%H:%M:%S")


def schedule_tenant(ctx: RequestContext, tenant: str, now: datetime, report: Report) -> None:
    """Claim and request the due windows of one tenant, at most ``MAX_CATCHUP_WINDOWS``."""
    settings = ctx.settings
    settled = settled_local(now, ctx.zone_of(tenant), settings.settle_minutes)
    cursor = ctx.store.get_cursor(tenant)
    if cursor is None:
        start = initial_cursor(settled, settings.window_minutes, _export_start(settings))
        if ctx.store.init_cursor(tenant, start.strftime(TIME_FORMAT), now):
            logger.info("cursor created", extra={"tenant": tenant, "nextBegin": start.strftime(TIME_FORMAT)})
        cursor = ctx.store.get_cursor(tenant)
        if cursor is None:  # pragma: no cover - the put above or a concurrent one created it
            raise RuntimeError(f"cursor of tenant {tenant} vanished")
    windows = plan_windows(parse_time(cursor), settled, settings.window_minutes, settings.max_catchup_windows)
    expected = cursor
    for window in windows:
        if report.stopped or report.ccfs_paused or ctx.out_of_time():
            return
        claim = WindowClaim(tenant, window, SCHEDULE_DATA_TYPE, _account_for(tenant), "schedule")
        if not ctx.store.claim_scheduled_window(claim, expected_cursor=expected, now=now):
            report.lost_races += 1
            logger.info("another tick advanced the cursor; leaving this tenant to it", extra={"tenant": tenant})
            return
        expected = window.next_begin.strftime(TIME_FORMAT)
        outcome = request_claimed_window(ctx, claim, now, report)
        if outcome not in (RequestOutcome.REQUESTED, RequestOutcome.NO_DATA, RequestOutcome.LOST):
            return


def planning_lag_minutes(ctx: RequestContext, tenant: str, now: datetime) -> float:
    """How long the tenant's oldest due window has waited to be claimed, in minutes: 0 when its
    cursor is caught up. A tenant whose cursor stopped moving (CC-FS refusing, a tick that keeps
    stopping early, a tenant without a cursor) grows it by an hour per hour."""
    settings = ctx.settings
    settled = settled_local(now, settings.zone, settings.settle_minutes)
    cursor = ctx.store.get_cursor(tenant)
    # a tenant without a cursor (never reached) starts where its first tick would start it
    begin = parse_time(cursor) if cursor else initial_cursor(settled, settings.window_minutes, _export_start(settings))
    due = next_grid_start(begin, settings.window_minutes)  # its first unclaimed window is due then
    return max(0.0, (settled - due).total_seconds() / 60)


def run_tick(ctx: RequestContext, report: Report | None = None) -> Report:
    """One scheduled invocation: every tenant's due windows, then the reconciler, then how far the
    tenant furthest behind is (``planning_lag_minutes``, every tenant, even after an early stop) and
    how old each tenant's newest complete window is (``ctx.measure_freshness``)."""
    report = report or Report()
    now = ctx.clock()
    for tenant in ctx.settings.tenants:
        if report.stopped:
            break
        schedule_tenant(ctx, tenant, now, report)
    if not report.stopped:
        reconcile(ctx, now, report)
    lags = {tenant: planning_lag_minutes(ctx, tenant, now) for tenant in ctx.settings.tenants}
    behind = {tenant: round(lag) for tenant, lag in lags.items() if lag > 0}
    if behind:
        logger.warning("tenants behind schedule (minutes a due window has waited)", extra={"lagMinutes": behind})
    report.planning_lag_minutes = max(lags.values(), default=0.0)
    if ctx.measure_freshness:
        reader = FreshnessReader.of_store(ctx.store)
        report.freshness = [reader.measure(tenant, ctx.zone_of(tenant), now) for tenant in ctx.settings.tenants]
    return report


# ---------------------------------------------------------------------------- reconciler


def _window_of(job: Job) -> WindowClaim:
    window = Window(parse_time(str(job.begin_time)), parse_time(str(job.end_time)))
    tenant = tenant_of_window(job.window_pk or "") or str(job.tenant)
    return WindowClaim(tenant, window, job.data_type or SCHEDULE_DATA_TYPE, job.account_id, "")


def _rerequest(ctx: RequestContext, job: Job, now: datetime, report: Report) -> None:
    """A REQUESTED job whose callback never came: ask again for the same window."""
    rid = job.response_id
    attempt = job.attempt or 1
    if attempt >= ctx.settings.max_attempts:
        error = f"no callback after {attempt} attempts"
        if ctx.store.fail_requested_job(job, error, now):
            report.failed += 1
            logger.error("job FAILED: " + error, extra={"responseId": rid, "window": job.window_sk})
        return
    if report.ccfs_paused or ctx.out_of_time() or not ctx.store.lease_job(job, now):
        return
    claim = _window_of(job)
    try:
        new_id = _ask(ctx, claim)
    except CcfsAuthError as exc:
        report.ccfs_errors += 1
        report.auth_error = exc
        logger.error("CC-FS rejected our signature: check the ak/sk secret and the clock")
        return
    except (CcfsNotFound, CcfsPermanentError) as exc:
        if ctx.store.fail_requested_job(job, f"re-request refused: {exc}", now):
            report.failed += 1
            logger.error("re-request refused for good: job FAILED", extra={"responseId": rid, "error": str(exc)})
        return
    except CcfsError as exc:
        report.ccfs_errors += 1
        report.ccfs_paused = True
        logger.warning("CC-FS unavailable: re-request postponed", extra={"responseId": rid, "error": str(exc)})
        return
    new_job = NewJob(response_id=new_id, claim=claim, attempt=attempt + 1)
    result = ctx.store.supersede(job, new_job, now)
    if result is RecordResult.JOB_EXISTS and ctx.store.supersede_into_existing(job, new_job, now):
        # CC-FS called back for the new responseId before it was recorded (an UNSOLICITED item):
        # that callback is this job's, as for a first request.
        promote_early_callback(ctx.store, ctx.send_bill, new_id, now)
        result = RecordResult.RECORDED
    if result is RecordResult.RECORDED:
        report.re_requested += 1
        logger.warning(
            "no callback in time: window re-requested",
            extra={"responseId": rid, "newResponseId": new_id, "attempt": attempt + 1},
        )
    else:
        report.lost_races += 1
        logger.warning("job changed while it was re-requested (callback arrived?)", extra={"responseId": rid})


def _retry_claimed(ctx: RequestContext, item: WindowItem, now: datetime, report: Report) -> None:
    """A window left CLAIMED by a crash or a transient error: request it (or give up, loudly)."""
    claim = item.claim
    stalled_before = now - timedelta(hours=ctx.settings.stalled_job_hours)
    claimed_at = datetime.fromisoformat(str(item.claimed_at or item.status_at))
    if claimed_at < stalled_before:
        last_error = "unknown" if item.last_error is None else item.last_error
        error = f"could not be requested for {ctx.settings.stalled_job_hours} h: {last_error}"
        if ctx.store.fail_window(claim, error, now):
            report.failed += 1
            logger.error("window FAILED", extra={"tenant": claim.tenant, "window": _describe(claim.window)})
        return
    if report.ccfs_paused or report.stopped or ctx.out_of_time() or not ctx.store.lease_window(claim, now):
        return
    request_claimed_window(ctx, claim, now, report)


def reconcile(
    ctx: RequestContext, now: datetime | None = None, report: Report | None = None, *, max_pages: int = 5
) -> Report:
    """Find lost callbacks, leftover claims and stalled downloads (bounded GSI pages each)."""
    now = now or ctx.clock()
    report = report or Report()
    settings = ctx.settings
    store = ctx.store

    timeout = now - timedelta(minutes=settings.callback_timeout_minutes)
    for job in store.jobs_in(JobStatus.REQUESTED, timeout, max_pages=max_pages):
        if report.stopped:
            return report
        _rerequest(ctx, job, now, report)

    claimed = now - timedelta(minutes=CLAIM_RETRY_MINUTES)
    for item in store.claimed_windows(claimed, max_pages=max_pages):
        if report.stopped:
            return report
        _retry_claimed(ctx, item, now, report)

    stalled = now - timedelta(hours=settings.stalled_job_hours)
    for job in store.jobs_in(JobStatus.DOWNLOADING, stalled, max_pages=max_pages):
        done = job.recordings_done
        total = job.recordings_total
        error = f"stalled: {done} of {total} recordings"
        if store.fail_stalled_job(job, error, now):
            report.failed += 1
            logger.error("job FAILED: " + error, extra={"responseId": job.response_id})
    return report


# ---------------------------------------------------------------------------- backfill


class InvalidBackfill(ValueError):
    """A RequestQueue message that can never succeed; the message says which field and why."""


class BackfillRetry(RuntimeError):
    """CC-FS was unavailable: fail the SQS record so it is redelivered later."""


@dataclass(frozen=True)
class Backfill:
    tenant: str
    account_id: str | None
    begin: datetime
    end: datetime
    data_type: str
    message_account_id: str | None
    """The accountId as the message gave it (kept for the continuation message)."""
    reexport: str | None = None
    """The re-export token (``BackfillMessage.reexport``): exported windows are requested again."""

    def continuation(self, begin: datetime) -> BackfillMessage:
        """The RequestQueue message for the rest of the range, from ``begin``."""
        return BackfillMessage.model_validate(
            {
                "accountId": self.message_account_id or None,
                "beginTime": begin.strftime(TIME_FORMAT),
                "endTime": self.end.strftime(TIME_FORMAT),
                "dataType": self.data_type,
                "reexport": self.reexport,
            }
        )


def parse_backfill(body: str, settings: Settings) -> Backfill:
    """Validate a RequestQueue message body; raise :class:`InvalidBackfill` with the reason."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        raise InvalidBackfill("body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidBackfill("body is not a JSON object")
    try:
        message = BackfillMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidBackfill(validation_reason(exc, "message")) from None

    configured = settings.tenant_account_ids
    account = message.accountId
    if account == ALL_ACCOUNTS:
        account = None
    if configured:
        if account is None:
            if len(configured) != 1:
                raise InvalidBackfill("accountId: required when several tenants are configured")
            account = configured[0]
        elif account not in configured:
            raise InvalidBackfill("accountId: not one of the configured tenants (TENANT_ACCOUNT_IDS)")
    tenant = account or ALL_ACCOUNTS
    return Backfill(
        tenant=tenant,
        account_id=account,
        begin=parse_time(message.beginTime),
        end=parse_time(message.endTime),
        data_type=message.dataType,
        message_account_id=message.accountId,
        reexport=message.reexport,
    )


def handle_backfill_message(ctx: RequestContext, body: str, report: Report, *, message_id: str) -> None:
    """One RequestQueue message: parsed (:func:`parse_backfill`), then :func:`handle_backfill`. An
    invalid one is refused at once: counted (``BackfillRefused``, alarmed), logged with the reason and
    moved to the RequestDLQ with the reason on it (``ctx.refuse_backfill``); nothing else changes.
    Without a refusal queue its record fails on purpose (SQS moves it there after ``maxReceiveCount``)."""
    try:
        backfill = parse_backfill(body, ctx.settings)
    except InvalidBackfill as exc:
        report.backfill_refused += 1
        if ctx.refuse_backfill is None:
            logger.error(
                "backfill message refused; it will be retried until it reaches the DLQ",
                extra={"messageId": message_id, "reason": str(exc)},
            )
            raise
        ctx.refuse_backfill(body, str(exc), message_id)
        logger.error(
            "backfill message refused: moved to the RequestDLQ with the reason (fix it and send it again)",
            extra={"messageId": message_id, "reason": str(exc)},
        )
        return
    handle_backfill(ctx, backfill, report)


def handle_backfill(ctx: RequestContext, backfill: Backfill, report: Report) -> None:
    """Claim and request up to ``MAX_CATCHUP_WINDOWS`` windows of the range; send the rest on as
    one continuation message. Windows already claimed are skipped, so a redelivered message asks
    CC-FS for nothing twice. Raises on a transient or auth error (the message is retried; its
    windows claimed so far are skipped then, and the CLAIMED one is the reconciler's)."""
    now = ctx.clock()
    windows, rest = split_range(backfill.begin, backfill.end, max_windows=ctx.settings.max_catchup_windows)
    for index, window in enumerate(windows):
        if ctx.out_of_time() and index > 0:
            rest = window.begin
            break
        fresh = WindowClaim(backfill.tenant, window, backfill.data_type, backfill.account_id, "backfill")
        claim = (
            fresh if ctx.store.claim_backfill_window(fresh, now) else _claim_existing(ctx, backfill, fresh, now, report)
        )
        if claim is None:
            continue
        outcome = request_claimed_window(ctx, claim, now, report)
        if outcome is RequestOutcome.AUTH:
            raise report.auth_error or CcfsAuthError("queryBillData", "signature rejected")
        if outcome is RequestOutcome.TRANSIENT:
            raise BackfillRetry("CC-FS unavailable; the message will be retried")
    if rest is not None:
        ctx.send_request(backfill.continuation(rest))
        report.continuations += 1
        logger.info(
            "backfill continues in a new message",
            extra={"tenant": backfill.tenant, "from": rest.strftime(TIME_FORMAT)},
        )


def _claim_existing(
    ctx: RequestContext, backfill: Backfill, claim: WindowClaim, now: datetime, report: Report
) -> WindowClaim | None:
    """A backfill window that exists already: skipped, and said so (``BackfillWindowsAlreadyExported``
    when its export ended); with a re-export token, an ended export is claimed again and returned
    (``WindowsReexported``) to be requested like a new one."""
    item = ctx.store.get_window(claim.tenant, claim.window)
    job = ctx.store.get_job(item.response_id) if item is not None and item.response_id else None
    state = export_state(item, job)
    where = {
        "tenant": claim.tenant,
        "window": _describe(claim.window),
        "responseId": item.response_id if item else None,
        "jobStatus": (job.job_status if job else None) or (item.job_status if item else None),
    }
    if backfill.reexport is None or state is ExportState.GONE or item is None:
        report.skipped += 1
        if state is ExportState.EXPORTED:
            report.already_exported += 1
            logger.warning(
                "backfill window exported already: nothing requested (`aicc-export reexport` requests it again)",
                extra=where,
            )
        else:
            logger.info("backfill window claimed already (its export is running): skipped", extra=where)
        return None
    if state is ExportState.IN_PROGRESS:
        report.reexport_busy += 1
        logger.warning("re-export not started: the window's export is still running; send it again later", extra=where)
        return None
    if ctx.reexports is None:
        raise ConfigError("re-export messages need the re-export store (RequestContext.reexports)")
    again = WindowClaim(claim.tenant, claim.window, backfill.data_type, claim.account_id, REEXPORT_SOURCE)
    if not ctx.reexports.reclaim(again, item, backfill.reexport, now):
        report.skipped += 1
        logger.info("re-export done already for this token, or the window moved: skipped", extra=where)
        return None
    report.reexported += 1
    logger.warning("window re-exported: requested from CC-FS again", extra={**where, "reexport": backfill.reexport})
    return again
