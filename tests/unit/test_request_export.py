"""request_export: schedule tick, reconciler and backfill.

The domain (``run_tick``, ``reconcile``, ``handle_backfill``, ``parse_backfill``) runs on the in-memory
jobs table and queues (tests/fakes) with the fake CC-FS: no moto. The tests through the handler
(``handler``: an event in; the summary, the batch item failures, the EMF metrics and the SQS
continuation message out) run on moto, where the wiring and the wire are the point.

Times: ``T`` = 2026-11-21 10:10 UTC = 18:10 in Asia/Shanghai; with SETTLE_MINUTES=30 the settled
wall clock is 17:40, so from EXPORT_START_TIME 12:00 the due hourly windows are 12:00 … 16:59:59.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest

from ccfs.errors import (
    CcfsAuthError,
    CcfsNotFound,
    CcfsPermanentError,
    CcfsTransientError,
    CcfsUnknownResultCode,
)
from exporter import ccfs_factory
from exporter.aws import resource
from exporter.config import Settings
from exporter.jobs.items import NewJob, WindowClaim
from exporter.jobs.keys import JOB_SK, JobStatus, job_key, tenant_of_window, utc_now_iso, window_key
from exporter.jobs.store import JobStore
from exporter.messages import BillMessage
from exporter.planner import Window
from exporter.requesting import (
    InvalidBackfill,
    Report,
    RequestContext,
    handle_backfill,
    parse_backfill,
    reconcile,
    run_tick,
)
from tests.conftest import AwsNames, app_env, emf_totals, load_handler, sqs_messages
from tests.fakes.ccfs import FakeCcfs
from tests.fakes.jobs_table import FakeJobsTable
from tests.fakes.queues import FakeQueue

EVENTS = Path(__file__).resolve().parents[2] / "events"
T = datetime(2026, 11, 21, 10, 10, tzinfo=UTC)
WINDOWS_AT_T = [f"2026-11-21 {h}:00:00|2026-11-21 {h}:59:59" for h in range(12, 17)]
_QUEUES = "https://sqs.us-east-1.amazonaws.com/123456789012/"
NAMES = AwsNames(
    secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:aicc/ccfs-AbCdEf",
    request_queue_url=_QUEUES + "request",
    bill_queue_url=_QUEUES + "bill",
    recording_queue_url=_QUEUES + "recording",
    recording_dlq_url=_QUEUES + "recording-dlq",
)
"""What the domain tests' settings name: nothing is called at these addresses (fakes stand in)."""


# ---------------------------------------------------------------------------- fakes and helpers

_LOADER = botocore.loaders.create_loader()


@pytest.fixture(autouse=True)
def _shared_botocore_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto gives every test a fresh boto3 session, and every session re-reads botocore's JSON
    service models (most of a test's time). The files never change: share one loader."""
    monkeypatch.setattr(botocore.session, "create_loader", lambda *args, **kwargs: _LOADER)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def env() -> Callable[..., Settings]:
    """The functions' settings (template.yaml's environment) plus overrides, without AWS."""

    def make(**overrides: str) -> Settings:
        return Settings.from_env(app_env(NAMES, **{"EXPORT_START_TIME": "2026-11-21T12:00:00", **overrides}))

    return make


@pytest.fixture
def jobs_table() -> FakeJobsTable:
    return FakeJobsTable(NAMES.jobs_table)


@pytest.fixture
def ccfs() -> FakeCcfs:
    return FakeCcfs()


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


def make_ctx(
    jobs_table: FakeJobsTable,
    settings: Settings,
    ccfs: FakeCcfs,
    clock: Clock,
    bills: FakeQueue | None = None,
    requests: FakeQueue | None = None,
) -> RequestContext:
    return RequestContext(
        settings=settings,
        store=JobStore(settings.jobs_table, settings.retention_days, jobs_table=jobs_table),
        ccfs=lambda tenant: ccfs,
        clock=clock,
        send_request=(requests or FakeQueue()).send,
        send_bill=(bills or FakeQueue()).send,
    )


Where = FakeJobsTable | Settings
"""The in-memory table of a domain test, or the settings naming the moto table of a handler test."""


def table(settings: Settings) -> Any:
    return resource("dynamodb").Table(settings.jobs_table)  # the process-cached resource: no new client


def table_items(where: Where) -> list[dict[str, Any]]:
    if isinstance(where, FakeJobsTable):
        return [copy.deepcopy(item) for item in where.items.values()]
    return table(where).scan(ConsistentRead=True)["Items"]


def get_item(where: Where, key: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(where, FakeJobsTable):
        return where.get(key)
    return table(where).get_item(Key=key, ConsistentRead=True).get("Item")


def jobs(where: Where, status: str | None = None) -> list[dict[str, Any]]:
    found = [i for i in table_items(where) if i["sk"] == JOB_SK]
    return [j for j in found if status is None or j["job_status"] == status]


def window_item(where: Where, sk: str, tenant: str = "acct001") -> dict[str, Any]:
    begin, end = sk.split("|")
    item = get_item(where, window_key(tenant, begin, end))
    assert item is not None, sk
    return item


def emitted_metrics(output: str) -> dict[str, float]:
    """Sum every EMF metric Powertools printed to stdout, by name."""
    return emf_totals(output, namespace="AiccExport")


def sqs_event(*bodies: str) -> dict[str, Any]:
    template = json.loads((EVENTS / "backfill_sqs.json").read_text())["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body
        records.append(record)
    return {"Records": records}


@pytest.fixture
def queues() -> dict[str, FakeQueue]:
    """The in-memory queues of the ``handler`` fixture, by queue URL."""
    return {}


@pytest.fixture
def handler(
    monkeypatch: pytest.MonkeyPatch,
    jobs_table: FakeJobsTable,
    queues: dict[str, FakeQueue],
    ccfs: FakeCcfs,
    clock: Clock,
) -> Iterator[Any]:
    """functions/request_export/app.py as Lambda runs it (settings from the environment, events in,
    metrics out) on the in-memory jobs table and queues, the fake CC-FS and the fake clock, tenants
    in TENANT_TIMEZONE: any AWS client it still asked for would fail the test."""
    from exporter import aws as exporter_aws
    from exporter.config import get_settings

    for key, value in app_env(NAMES, EXPORT_START_TIME="2026-11-21T12:00:00").items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    module = load_handler("request_export")

    def no_aws(service: str) -> Any:
        raise AssertionError(f"the handler asked for an AWS {service} client in a test without AWS")

    monkeypatch.setattr(exporter_aws, "client", no_aws)
    monkeypatch.setattr(exporter_aws, "resource", no_aws)
    monkeypatch.setattr(module, "JobStore", lambda name, days: JobStore(name, days, jobs_table=jobs_table))
    monkeypatch.setattr(module, "QueueSender", lambda url, variable: queues.setdefault(url, FakeQueue()))
    monkeypatch.setattr(ccfs_factory, "ccfs_client", lambda settings, tenant: ccfs)
    # the secret's tenants carry no time zone of their own (as the moto secret): TENANT_TIMEZONE
    monkeypatch.setattr(ccfs_factory, "tenant_zone", lambda settings, tenant: settings.zone)
    monkeypatch.setattr(module, "utc_now", clock)
    yield module
    get_settings.cache_clear()  # settings of this test's environment: never another test's


@pytest.fixture
def moto_handler(aws: Any, monkeypatch: pytest.MonkeyPatch, ccfs: FakeCcfs, clock: Clock) -> Any:
    """functions/request_export/app.py on moto (DynamoDB and SQS on the wire), wired to the fake
    CC-FS and the fake clock."""
    monkeypatch.setenv("EXPORT_START_TIME", "2026-11-21T12:00:00")
    from exporter.config import get_settings

    get_settings.cache_clear()
    module = load_handler("request_export")
    monkeypatch.setattr(ccfs_factory, "ccfs_client", lambda settings, tenant: ccfs)
    monkeypatch.setattr(module, "utc_now", clock)
    return module


# ---------------------------------------------------------------------------- schedule tick


def test_tick_requests_each_due_window_once_and_advances_the_cursor(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))

    assert ccfs.windows() == WINDOWS_AT_T
    assert {c["account_id"] for c in ccfs.query_calls} == {"acct001"}
    assert {c["data_type"] for c in ccfs.query_calls} == {"call_record"}
    assert {c["callback_url"] for c in ccfs.query_calls} == {"https://api.test/v1/ccfs/callback"}
    assert report.requested == 5
    assert JobStore(settings.jobs_table, jobs_table=jobs_table).get_cursor("acct001") == "2026-11-21 17:00:00"
    requested = jobs(jobs_table, "REQUESTED")
    assert len(requested) == 5
    for job in requested:
        window = window_item(jobs_table, job["window_sk"])
        assert window["response_id"] == job["response_id"]
        assert "job_status" not in window and "status_at" not in window  # left the GSI
        assert job["attempt"] == 1 and job["bill_enqueued"] is False and job["tenant"] == "acct001"
        assert job["expires_at"] == int((T + timedelta(days=365)).timestamp())


def test_second_tick_at_the_same_time_requests_nothing(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert len(ccfs.query_calls) == 5
    assert report.requested == 0


def test_without_export_start_the_first_tick_starts_from_now(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env(EXPORT_START_TIME="")
    assert settings.export_start_time == ""
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert ccfs.query_calls == []
    assert JobStore(settings.jobs_table, jobs_table=jobs_table).get_cursor("acct001") == "2026-11-21 17:00:00"
    clock.advance(hours=1)
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert ccfs.windows() == ["2026-11-21 17:00:00|2026-11-21 17:59:59"]


def test_all_accounts_tenant_omits_account_id(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env(TENANT_ACCOUNT_IDS="")
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert len(ccfs.query_calls) == 5
    assert {c["account_id"] for c in ccfs.query_calls} == {None}
    assert JobStore(settings.jobs_table, jobs_table=jobs_table).get_cursor("_all") == "2026-11-21 17:00:00"
    assert all("account_id" not in j and j["tenant"] == "_all" for j in jobs(jobs_table))


def test_concurrent_tick_never_requests_a_window_twice(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    reports: list[Report] = []
    # While tick A is inside its first CC-FS call, a second, overlapping tick B runs completely.
    ccfs.before_call = lambda: reports.append(run_tick(make_ctx(jobs_table, settings, ccfs, clock)))
    report_a = run_tick(make_ctx(jobs_table, settings, ccfs, clock))

    assert sorted(ccfs.windows()) == WINDOWS_AT_T  # each window exactly once
    assert report_a.requested == 1 and reports[0].requested == 4
    assert report_a.lost_races == 1  # A's next claim was cancelled: B had moved the cursor
    assert len(jobs(jobs_table, "REQUESTED")) == 5


def test_tick_with_a_stale_cursor_read_claims_nothing(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))  # tick B did everything
    stale = make_ctx(jobs_table, settings, ccfs, clock)
    # Tick A read an older cursor (here one whose first window was never claimed, e.g. written
    # before a WINDOW_MINUTES change): only the cursor condition stops it from moving back.
    stale.store.get_cursor = lambda tenant: "2026-11-21 11:30:00"  # type: ignore[method-assign]
    report = run_tick(stale)
    assert len(ccfs.query_calls) == 5
    assert report.requested == 0 and report.lost_races == 1
    assert JobStore(settings.jobs_table, jobs_table=jobs_table).get_cursor("acct001") == "2026-11-21 17:00:00"
    assert get_item(jobs_table, window_key("acct001", "2026-11-21 11:30:00", "2026-11-21 11:59:59")) is None


def test_catch_up_is_bounded_per_tick_and_continues(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env(MAX_CATCHUP_WINDOWS="2")
    sizes = []
    for _ in range(4):
        before = len(ccfs.query_calls)
        run_tick(make_ctx(jobs_table, settings, ccfs, clock))
        sizes.append(len(ccfs.query_calls) - before)
    assert sizes == [2, 2, 1, 0]
    assert ccfs.windows() == WINDOWS_AT_T


def test_transient_error_leaves_the_window_claimed_for_the_reconciler(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    ccfs.query_errors = [CcfsTransientError("queryBillData", "HTTP 503")]
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))

    assert len(ccfs.query_calls) == 1  # the tenant stops for this tick
    assert report.ccfs_errors == 1 and report.requested == 0
    first = window_item(jobs_table, WINDOWS_AT_T[0])
    assert first["job_status"] == "CLAIMED" and "HTTP 503" in first["last_error"]
    assert JobStore(settings.jobs_table, jobs_table=jobs_table).get_cursor("acct001") == "2026-11-21 13:00:00"

    clock.advance(minutes=1)  # too early for the reconciler; the other windows go ahead
    run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert window_item(jobs_table, WINDOWS_AT_T[0])["job_status"] == "CLAIMED"
    assert len(ccfs.query_calls) == 5

    clock.advance(minutes=5)
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert report.requested == 1
    assert sorted(ccfs.windows()[1:]) == WINDOWS_AT_T  # the first window asked again, once
    first = window_item(jobs_table, WINDOWS_AT_T[0])
    assert "job_status" not in first and first["response_id"]
    assert len(jobs(jobs_table, "REQUESTED")) == 5


def test_claimed_window_with_a_live_lease_is_not_requested_twice(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    store = JobStore(settings.jobs_table, jobs_table=jobs_table)
    claim = WindowClaim("acct001", Window.from_sk(WINDOWS_AT_T[0]), "call_record", "acct001", "schedule")
    assert store.claim_backfill_window(claim, T - timedelta(minutes=10))
    assert store.lease_window(claim, T)  # another reconciler is requesting it right now
    reconcile(make_ctx(jobs_table, settings, ccfs, clock), T + timedelta(minutes=1))
    assert ccfs.query_calls == []


def test_permanent_error_fails_the_window_and_is_counted(
    handler: Any, jobs_table: FakeJobsTable, ccfs: FakeCcfs, lambda_context: Any, capsys: Any
) -> None:
    ccfs.query_errors = [CcfsPermanentError("queryBillData", "a parameter is malformed", "0300004")]
    event = json.loads((EVENTS / "schedule.json").read_text())
    summary = handler.lambda_handler(event, lambda_context)

    assert summary["failed"] == 1 and summary["requested"] == 0
    assert len(ccfs.query_calls) == 1  # tenant stopped for this tick
    failed = window_item(jobs_table, WINDOWS_AT_T[0])
    assert failed["job_status"] == "FAILED" and "0300004" in failed["error"]
    assert emitted_metrics(capsys.readouterr().out)["JobsFailed"] == 1

    summary = handler.lambda_handler(event, lambda_context)  # next tick continues after it
    assert summary["requested"] == 4


def test_undocumented_result_code_keeps_the_window_claimed_for_the_reconciler(
    handler: Any, jobs_table: FakeJobsTable, ccfs: FakeCcfs, lambda_context: Any, capsys: Any
) -> None:
    # what the client raises after its own retries (protocol §7: never fail a window on first sight)
    ccfs.query_errors = [CcfsUnknownResultCode("queryBillData", "undocumented result code (gave up)", "0309999")]
    event = json.loads((EVENTS / "schedule.json").read_text())
    summary = handler.lambda_handler(event, lambda_context)

    assert summary["failed"] == 0 and summary["requested"] == 0 and summary["ccfsErrors"] == 1
    assert len(ccfs.query_calls) == 1  # CC-FS left alone for the rest of the tick
    kept = window_item(jobs_table, WINDOWS_AT_T[0])
    assert kept["job_status"] == "CLAIMED" and "0309999" in kept["last_error"]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert "JobsFailed" not in metrics and metrics["CcfsErrors"] == 1


def test_unknown_code_hook_counts_the_alarmed_metric(capsys: Any) -> None:
    from exporter import ccfs_factory
    from exporter.aws import metrics

    ccfs_factory.count_unknown_code("getRecordFileUrlFromObs", "0309999")
    ccfs_factory.count_unknown_code("queryBillData", "0309999")
    metrics.flush_metrics()
    assert emitted_metrics(capsys.readouterr().out)["CcfsUnknownResultCode"] == 2


def test_auth_error_stops_everything_keeps_the_window_and_fails_the_invocation(
    handler: Any,
    jobs_table: FakeJobsTable,
    ccfs: FakeCcfs,
    lambda_context: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANT_ACCOUNT_IDS", "acct001,acct002")
    from exporter.config import get_settings

    get_settings.cache_clear()
    ccfs.query_errors = [CcfsAuthError("queryBillData", "signature rejected (HTTP 401)", "401")]
    with pytest.raises(CcfsAuthError):
        handler.lambda_handler(json.loads((EVENTS / "schedule.json").read_text()), lambda_context)
    assert len(ccfs.query_calls) == 1  # not the second tenant, not the reconciler
    assert window_item(jobs_table, WINDOWS_AT_T[0])["job_status"] == "CLAIMED"  # nothing lost
    assert emitted_metrics(capsys.readouterr().out)["CcfsErrors"] == 1


def test_no_data_found_completes_the_window_without_a_job(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    ccfs.query_errors = [CcfsNotFound("queryBillData", "no data found", "0300012")]
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert report.no_data == 1 and report.requested == 4
    first = window_item(jobs_table, WINDOWS_AT_T[0])
    assert first["no_data"] is True and "job_status" not in first


def test_a_caught_up_tick_reports_no_planning_lag(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env(TENANT_ACCOUNT_IDS="acct001,acct002")
    assert run_tick(make_ctx(jobs_table, settings, ccfs, clock)).planning_lag_minutes == 0
    clock.advance(minutes=20)  # 18:30 local, settled 18:00: the 17:00 window is due now
    assert run_tick(make_ctx(jobs_table, settings, ccfs, clock)).planning_lag_minutes == 0  # ...and claimed


def test_planning_lag_is_the_tenant_furthest_behind(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    """The heartbeat's metric, per tenant: a transient CC-FS error stops acct001 after its first
    window and pauses CC-FS for the tick, so acct002 is never reached. At T (18:10 local, settled
    17:40) acct001's next window [13:00, 14:00) has been due since 14:00 (220 minutes); acct002,
    without a cursor, since its first window [12:00, 13:00) ended (280 minutes)."""
    settings = env(TENANT_ACCOUNT_IDS="acct001,acct002")
    ccfs.query_errors = [CcfsTransientError("queryBillData", "HTTP 503")]
    report = run_tick(make_ctx(jobs_table, settings, ccfs, clock))
    assert len(ccfs.query_calls) == 1 and report.planning_lag_minutes == 280
    clock.advance(minutes=60)  # still refused: the lag grows with the clock
    ccfs.query_errors = [CcfsTransientError("queryBillData", "HTTP 503")] * 10
    assert run_tick(make_ctx(jobs_table, settings, ccfs, clock)).planning_lag_minutes == 340
    ccfs.query_errors = []
    clock.advance(minutes=10)  # CC-FS back: everyone catches up
    assert run_tick(make_ctx(jobs_table, settings, ccfs, clock)).planning_lag_minutes == 0


def test_schedule_event_through_the_handler_emits_jobs_requested(
    handler: Any, jobs_table: FakeJobsTable, ccfs: FakeCcfs, lambda_context: Any, capsys: Any
) -> None:
    summary = handler.lambda_handler(json.loads((EVENTS / "schedule.json").read_text()), lambda_context)
    assert summary["requested"] == 5
    # freshness of the one tenant, missing since 12:00 local (6 h 10 min): once as the stalest
    # tenant's and once with its tenant dimension (tests/unit/test_freshness.py)
    assert emitted_metrics(capsys.readouterr().out) == {
        "JobsRequested": 5,
        "PlanningLagMinutes": 0,
        "ExportFreshnessHours": pytest.approx(2 * 6.17),
    }


def test_eventbridge_scheduler_payload_is_a_tick_too(
    handler: Any, jobs_table: FakeJobsTable, ccfs: FakeCcfs, lambda_context: Any
) -> None:
    assert handler.lambda_handler({}, lambda_context)["requested"] == 5
    with pytest.raises(ValueError, match="unsupported event"):
        handler.lambda_handler({"Records": [{"eventSource": "aws:sns"}]}, lambda_context)


# ---------------------------------------------------------------------------- reconciler


def _one_window(env: Any) -> Settings:
    return env(EXPORT_START_TIME="2026-11-21T16:00:00")


def test_reconciler_re_requests_after_the_timeout_then_fails_after_max_attempts(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = _one_window(env)
    ctx = make_ctx(jobs_table, settings, ccfs, clock)
    run_tick(ctx)
    (first,) = jobs(jobs_table, "REQUESTED")

    report = reconcile(ctx, T + timedelta(minutes=119))
    assert report.re_requested == 0 and len(ccfs.query_calls) == 1

    report = reconcile(ctx, T + timedelta(minutes=121))
    assert report.re_requested == 1 and len(ccfs.query_calls) == 2
    assert ccfs.windows() == ["2026-11-21 16:00:00|2026-11-21 16:59:59"] * 2
    old = get_item(jobs_table, job_key(first["response_id"]))
    assert old["job_status"] == "SUPERSEDED"
    (second,) = jobs(jobs_table, "REQUESTED")
    assert second["attempt"] == 2 and old["superseded_by"] == second["response_id"]
    window = window_item(jobs_table, first["window_sk"])
    assert window["response_id"] == second["response_id"] and window["attempt"] == 2

    reconcile(ctx, T + timedelta(minutes=242))
    (third,) = jobs(jobs_table, "REQUESTED")
    assert third["attempt"] == 3

    report = reconcile(ctx, T + timedelta(minutes=363))
    assert report.failed == 1 and len(ccfs.query_calls) == 3  # MAX_ATTEMPTS=3: no fourth request
    failed = get_item(jobs_table, job_key(third["response_id"]))
    assert failed["job_status"] == "FAILED" and failed["error"] == "no callback after 3 attempts"
    window = window_item(jobs_table, first["window_sk"])
    assert window["job_status"] == "FAILED"
    assert reconcile(ctx, T + timedelta(minutes=500)).failed == 0  # once


def test_re_request_metric_through_the_handler(
    handler: Any, jobs_table: FakeJobsTable, ccfs: FakeCcfs, clock: Clock, lambda_context: Any, capsys: Any
) -> None:
    event = json.loads((EVENTS / "schedule.json").read_text())
    handler.lambda_handler(event, lambda_context)
    capsys.readouterr()
    clock.advance(minutes=121)
    handler.lambda_handler(event, lambda_context)
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsReRequested"] == 5
    assert metrics["JobsRequested"] == 2  # the two windows that became due meanwhile


def test_callback_that_arrives_during_a_re_request_wins(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = _one_window(env)
    ctx = make_ctx(jobs_table, settings, ccfs, clock)
    run_tick(ctx)
    (job,) = jobs(jobs_table, "REQUESTED")
    store = ctx.store
    ccfs.before_call = lambda: store.mark_ready(
        job["response_id"], f"20261121_{job['response_id']}.zip", T, from_status=JobStatus.REQUESTED
    )
    report = reconcile(ctx, T + timedelta(minutes=121))
    assert report.re_requested == 0 and report.lost_races == 1
    assert get_item(jobs_table, job_key(job["response_id"]))["job_status"] == "READY"
    assert window_item(jobs_table, job["window_sk"])["response_id"] == job["response_id"]


def test_stalled_download_is_failed_with_its_progress(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    # "c": 25 h, past the 24 h a late recording may take to reach CC-FS, but not stalled yet
    ages = {"a" * 32: timedelta(hours=settings.stalled_job_hours + 1), "b" * 32: timedelta(hours=2)}
    ages["c" * 32] = timedelta(hours=settings.recording_grace_hours + 1)
    for rid, age in ages.items():
        jobs_table.seed(
            {
                **job_key(rid),
                "response_id": rid,
                "tenant": "acct001",
                "job_status": "DOWNLOADING",
                "status_at": utc_now_iso(T - age),
                "recordings_total": 10,
                "recordings_done": 3,
                "recordings_failed": 1,
            }
        )
    report = reconcile(make_ctx(jobs_table, settings, ccfs, clock), T)
    assert report.failed == 1
    stalled = get_item(jobs_table, job_key("a" * 32))
    assert stalled["job_status"] == "FAILED" and stalled["error"] == "stalled: 3 of 10 recordings"
    assert get_item(jobs_table, job_key("b" * 32))["job_status"] == "DOWNLOADING"
    assert get_item(jobs_table, job_key("c" * 32))["job_status"] == "DOWNLOADING"
    assert ccfs.query_calls == []


def test_window_claimed_for_longer_than_the_stall_limit_fails_loudly(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    store = JobStore(settings.jobs_table, jobs_table=jobs_table)
    claim = WindowClaim("acct001", Window.from_sk(WINDOWS_AT_T[0]), "call_record", "acct001", "schedule")
    store.claim_backfill_window(claim, T - timedelta(hours=settings.stalled_job_hours + 1))
    store.note_window_error(claim, "queryBillData: HTTP 503", T - timedelta(hours=1))
    report = reconcile(make_ctx(jobs_table, settings, ccfs, clock), T)
    assert report.failed == 1 and ccfs.query_calls == []
    item = window_item(jobs_table, WINDOWS_AT_T[0])
    assert item["job_status"] == "FAILED" and "HTTP 503" in item["error"]


def test_callback_that_beats_its_request_is_adopted(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env(EXPORT_START_TIME="2026-11-21T16:00:00")
    bills, requests = FakeQueue(), FakeQueue()
    ctx = make_ctx(jobs_table, settings, ccfs, clock, bills, requests)
    rid = "c" * 32
    # CC-FS answers with rid and calls back before we record the request.
    ctx.store.put_unsolicited(rid, f"20261121_{rid}.zip", "_all", None, T)
    ccfs.response_ids = [rid]
    report = run_tick(ctx)
    assert report.requested == 1
    job = get_item(jobs_table, job_key(rid))
    assert job["job_status"] == "READY" and job["bill_enqueued"] is True
    assert job["tenant"] == "acct001" and job["window_sk"] == "2026-11-21 16:00:00|2026-11-21 16:59:59"
    assert bills.sent == [
        BillMessage(responseId=rid, billFileName=f"20261121_{rid}.zip", tenant="acct001", accountId="acct001")
    ]
    assert requests.sent == []


def test_callback_that_beats_its_re_request_is_adopted(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = _one_window(env)
    bills, requests = FakeQueue(), FakeQueue()
    ctx = make_ctx(jobs_table, settings, ccfs, clock, bills, requests)
    run_tick(ctx)
    (first,) = jobs(jobs_table, "REQUESTED")
    rid = "d" * 32
    # CC-FS accepts the re-request and its callback lands before the reconciler records it.
    ccfs.before_call = lambda: ctx.store.put_unsolicited(
        rid, f"20261121_{rid}.zip", "_all", None, T + timedelta(minutes=121)
    )
    ccfs.response_ids = [rid]
    report = reconcile(ctx, T + timedelta(minutes=121))

    assert report.re_requested == 1 and report.lost_races == 0
    old = get_item(jobs_table, job_key(first["response_id"]))
    assert old["job_status"] == "SUPERSEDED" and old["superseded_by"] == rid
    job = get_item(jobs_table, job_key(rid))
    assert job["job_status"] == "READY" and job["bill_enqueued"] is True and job["attempt"] == 2
    assert job["window_sk"] == first["window_sk"] and job["tenant"] == "acct001"
    window = window_item(jobs_table, first["window_sk"])
    assert window["response_id"] == rid and window["attempt"] == 2
    assert bills.sent == [
        BillMessage(responseId=rid, billFileName=f"20261121_{rid}.zip", tenant="acct001", accountId="acct001")
    ]
    assert requests.sent == []
    assert jobs(jobs_table, "REQUESTED") == []


# ---------------------------------------------------------------------------- backfill

BACKFILL_4_DAYS = '{"accountId":"acct001","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-04 23:59:59"}'


def test_backfill_event_requests_each_window_once_and_redelivery_requests_nothing(
    moto_handler: Any, ccfs: FakeCcfs, lambda_context: Any, capsys: Any
) -> None:
    event = json.loads((EVENTS / "backfill_sqs.json").read_text())
    event["Records"][0]["body"] = BACKFILL_4_DAYS
    assert moto_handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert ccfs.windows() == [
        "2026-11-01 00:00:00|2026-11-03 23:59:59",
        "2026-11-04 00:00:00|2026-11-04 23:59:59",
    ]
    assert emitted_metrics(capsys.readouterr().out) == {"JobsRequested": 2}

    assert moto_handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}  # redelivery
    assert len(ccfs.query_calls) == 2
    settings = Settings.from_env()
    assert JobStore(settings.jobs_table).get_cursor("acct001") is None  # backfill never moves the cursor
    assert {w["source"] for w in table_items(settings) if tenant_of_window(w["pk"])} == {"backfill"}
    assert len(jobs(settings, "REQUESTED")) == 2


def test_long_backfill_fans_out_one_continuation_message(
    moto_handler: Any, aws: Any, ccfs: FakeCcfs, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_CATCHUP_WINDOWS", "2")
    from exporter.config import get_settings

    get_settings.cache_clear()
    body = '{"accountId":"acct001","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-10 23:59:59","dataType":"call"}'
    assert moto_handler.lambda_handler(sqs_event(body), lambda_context) == {"batchItemFailures": []}
    assert len(ccfs.query_calls) == 2 and {c["data_type"] for c in ccfs.query_calls} == {"call"}
    (message,) = sqs_messages(aws.request_queue_url)
    continuation = json.loads(message["Body"])
    assert continuation == {
        "accountId": "acct001",
        "beginTime": "2026-11-07 00:00:00",
        "endTime": "2026-11-10 23:59:59",
        "dataType": "call",
    }
    moto_handler.lambda_handler(sqs_event(message["Body"]), lambda_context)
    assert ccfs.windows()[2:] == [
        "2026-11-07 00:00:00|2026-11-09 23:59:59",
        "2026-11-10 00:00:00|2026-11-10 23:59:59",
    ]
    assert sqs_messages(aws.request_queue_url) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ('["2026-11-01 00:00:00"]', "not a JSON object"),
        ('{"beginTime":"2026-11-01 00:00:00"}', "endTime"),
        ('{"beginTime":"2026-11-02 00:00:00","endTime":"2026-11-01 00:00:00"}', "before beginTime"),
        ('{"beginTime":"2026-11-01T00:00:00","endTime":"2026-11-02 00:00:00"}', "yyyy-MM-dd HH:mm:ss"),
        ('{"beginTime":"2026-02-30 00:00:00","endTime":"2026-03-02 00:00:00"}', "yyyy-MM-dd HH:mm:ss"),
        ('{"accountId":"other","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}', "configured"),
        ('{"beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00","dataType":"cdr"}', "dataType"),
        (
            '{"begintime":"2026-11-01 00:00:00","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}',
            "begintime",
        ),
    ],
)
def test_malformed_backfill_is_refused_at_once_to_the_dlq_with_the_reason_and_writes_nothing(
    moto_handler: Any, ccfs: FakeCcfs, lambda_context: Any, capsys: Any, aws: Any, clock: Clock, body: str, reason: str
) -> None:
    settings = Settings.from_env()
    with pytest.raises(InvalidBackfill, match=reason):
        parse_backfill(body, settings)
    event = sqs_event(body)
    response = moto_handler.lambda_handler(event, lambda_context)
    assert response == {"batchItemFailures": []}  # consumed: never retried into the DLQ for hours
    assert ccfs.query_calls == []
    assert table_items(settings) == []
    assert emitted_metrics(capsys.readouterr().out) == {"JobsRequested": 0, "BackfillRefused": 1}
    moved = boto3.client("sqs").receive_message(
        QueueUrl=aws.request_dlq_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert [m["Body"] for m in moved] == [body]
    attributes = {k: v["StringValue"] for k, v in moved[0]["MessageAttributes"].items()}
    assert reason in attributes["refusedReason"]
    assert attributes["sourceMessageId"] == event["Records"][0]["messageId"]
    assert attributes["refusedAt"] == utc_now_iso(clock())


def test_a_bad_message_does_not_stop_the_good_one_in_the_batch(
    moto_handler: Any, ccfs: FakeCcfs, lambda_context: Any
) -> None:
    # on moto: the bad one is moved to the RequestDLQ on the wire
    event = sqs_event("{}", BACKFILL_4_DAYS)
    response = moto_handler.lambda_handler(event, lambda_context)
    assert response == {"batchItemFailures": []}
    assert len(ccfs.query_calls) == 2


def test_backfill_account_rules(env: Any) -> None:
    one = env()
    assert (
        parse_backfill('{"beginTime":"2026-11-01 00:00:00","endTime":"2026-11-01 00:00:00"}', one).tenant == "acct001"
    )
    several = env(TENANT_ACCOUNT_IDS="acct001,acct002")
    with pytest.raises(InvalidBackfill, match="required"):
        parse_backfill('{"beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}', several)
    whole = env(TENANT_ACCOUNT_IDS="")
    anyone = parse_backfill(
        '{"accountId":"x9","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}', whole
    )
    assert (anyone.tenant, anyone.account_id) == ("x9", "x9")
    nobody = parse_backfill('{"accountId":"","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}', whole)
    assert (nobody.tenant, nobody.account_id) == ("_all", None)
    with pytest.raises(InvalidBackfill, match="accountId"):
        parse_backfill(
            '{"accountId":"' + "x" * 21 + '","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-02 00:00:00"}', whole
        )


def test_backfill_transient_error_fails_the_record_and_redelivery_finishes(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    ctx = make_ctx(jobs_table, settings, ccfs, clock)
    backfill = parse_backfill(BACKFILL_4_DAYS, settings)
    ccfs.query_errors = [None, CcfsTransientError("queryBillData", "timeout")]
    with pytest.raises(RuntimeError, match="retried"):
        handle_backfill(ctx, backfill, Report())
    assert len(ccfs.query_calls) == 2
    report = Report()
    handle_backfill(ctx, backfill, report)  # redelivered: both windows are claimed already
    assert len(ccfs.query_calls) == 2 and report.skipped == 2
    clock.advance(minutes=6)
    assert reconcile(ctx).requested == 1  # the CLAIMED one is the reconciler's
    assert len(jobs(jobs_table, "REQUESTED")) == 2


def test_failed_backfill_window_can_be_retried_by_sending_the_backfill_again(
    jobs_table: FakeJobsTable, env: Any, ccfs: FakeCcfs, clock: Clock
) -> None:
    settings = env()
    ctx = make_ctx(jobs_table, settings, ccfs, clock)
    backfill = parse_backfill(BACKFILL_4_DAYS, settings)
    ccfs.query_errors = [CcfsPermanentError("queryBillData", "a parameter is malformed", "0300004")]
    report = Report()
    handle_backfill(ctx, backfill, report)
    assert report.failed == 1 and report.requested == 1
    report = Report()
    handle_backfill(ctx, backfill, report)
    assert report.requested == 1 and report.skipped == 1
    assert len(jobs(jobs_table, "REQUESTED")) == 2


def test_new_job_item_has_the_contract_fields() -> None:
    claim = WindowClaim("acct001", Window.from_sk(WINDOWS_AT_T[0]), "call_record", "acct001", "schedule")
    item = NewJob("d" * 32, claim, 1).item(T, 365)
    assert set(item) >= {
        "response_id", "tenant", "account_id", "begin_time", "end_time", "data_type", "attempt", "window_pk",
        "window_sk", "job_status", "status_at", "requested_at", "bill_enqueued", "cdr_rows", "index_rows",
        "bad_rows", "recordings_total", "recordings_done", "recordings_failed", "expires_at",
    }  # fmt: skip
