"""Freshness (issue 14): the age of each tenant's newest complete window, read from the jobs table,
reported by every schedule tick as ``ExportFreshnessHours`` (per tenant, and the stalest for the alarm).

The reader runs on the in-memory jobs table with windows and jobs written by the real ``JobStore``;
the handler test runs a schedule tick on moto and reads the EMF documents it printed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.jobs.freshness import FreshnessReader
from exporter.jobs.items import NewJob, WindowClaim
from exporter.jobs.keys import JobStatus, job_key
from exporter.jobs.store import JobStore
from exporter.planner import Window
from tests.conftest import load_handler
from tests.fakes.ccfs import FakeCcfs
from tests.fakes.jobs_table import FakeJobsTable

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
EVENTS = Path(__file__).resolve().parents[2] / "events"


def window(hour: int) -> Window:
    return Window.from_sk(f"2026-11-21 {hour:02}:00:00|2026-11-21 {hour:02}:59:59")


class Table:
    """Windows of tenant ``t1`` in each state, written through ``JobStore``."""

    def __init__(self) -> None:
        self.fake = FakeJobsTable()
        self.store = JobStore("jobs", jobs_table=self.fake)

    def claim(self, hour: int, tenant: str = "t1") -> WindowClaim:
        claim = WindowClaim(tenant, window(hour), "call_record", tenant, "backfill")
        assert self.store.claim_backfill_window(claim, NOW)
        return claim

    def job(self, hour: int, status: JobStatus | None, tenant: str = "t1") -> None:
        claim = self.claim(hour, tenant)
        rid = f"{tenant}-{hour:02}".ljust(32, "0")
        assert self.store.record_requested(NewJob(rid, claim, 1), NOW).value == "RECORDED"
        if status is not None:  # the download side's final status (Progress writes it)
            assert self.fake.update(
                job_key(rid),
                update="SET job_status = :s",
                condition="attribute_exists(pk)",
                values={":s": status.value},
            )

    def no_data(self, hour: int) -> None:
        assert self.store.window_no_data(self.claim(hour), NOW)

    def failed(self, hour: int) -> None:
        assert self.store.fail_window(self.claim(hour), "refused", NOW)


def test_the_newest_complete_window_counts_not_the_newer_ones_still_in_flight() -> None:
    t = Table()
    t.job(10, JobStatus.COMPLETED)
    t.job(12, JobStatus.PARTIAL)  # exported with failures that are alarmed on their own: complete
    t.job(13, JobStatus.DOWNLOADING)  # recordings not yet synced
    t.failed(14)
    t.job(15, None)  # REQUESTED, waiting for the callback
    t.claim(16)  # CLAIMED
    t.job(11, JobStatus.COMPLETED, tenant="t2")  # another tenant's windows are not this one's

    f = FreshnessReader(t.fake).measure("t1", SHANGHAI, NOW)

    # 12:00-12:59:59 Shanghai ended at 13:00 = 05:00 UTC, five hours before NOW
    assert (f.tenant, f.hours, f.complete, f.newest_complete) == ("t1", 5.0, True, window(12).sk)
    assert FreshnessReader(t.fake).measure("t2", SHANGHAI, NOW).hours == 6.0  # its own 11:00 window


def test_a_window_without_data_is_complete_and_time_is_tenant_local() -> None:
    t = Table()
    t.job(8, JobStatus.COMPLETED)
    t.no_data(9)
    t.job(10, JobStatus.FAILED)

    assert FreshnessReader(t.fake).measure("t1", SHANGHAI, NOW).hours == 8.0  # 09:59:59+1 s Shanghai = 02:00 UTC
    assert FreshnessReader(t.fake).measure("t1", UTC, NOW).hours == 0.0  # 10:00 UTC: just ended


def test_a_tenant_that_never_completed_a_window_reports_a_growing_lower_bound() -> None:
    t = Table()
    t.job(6, JobStatus.FAILED)
    t.job(7, JobStatus.DOWNLOADING)

    f = FreshnessReader(t.fake).measure("t1", SHANGHAI, NOW)
    assert (f.hours, f.complete, f.newest_complete) == (
        12.0,
        False,
        None,
    )  # missing since 06:00 = 22:00 UTC the day before
    later = FreshnessReader(t.fake).measure("t1", SHANGHAI, NOW + timedelta(hours=3))
    assert later.hours == 15.0


def test_a_tenant_without_windows_is_measured_from_its_cursor_or_not_at_all() -> None:
    t = Table()
    assert t.store.init_cursor("t1", "2026-11-21 15:00:00", NOW)  # 07:00 UTC

    assert FreshnessReader(t.fake).measure("t1", SHANGHAI, NOW).hours == 3.0
    never = FreshnessReader(t.fake).measure("t9", SHANGHAI, NOW)
    assert (never.hours, never.complete) == (0.0, False)


def test_the_read_is_bounded_per_tenant() -> None:
    t = Table()
    t.job(0, JobStatus.COMPLETED)
    for hour in range(1, 23):
        t.job(hour, JobStatus.DOWNLOADING)
    t.fake.requests.clear()

    midnight = NOW + timedelta(hours=14)  # 2026-11-22 00:00 UTC

    f = FreshnessReader(t.fake, max_windows=10).measure("t1", UTC, midnight)

    assert t.fake.requests.count("GetItem") == 10  # one job read per window looked at, no more
    assert (f.complete, f.hours) == (False, 11.0)  # at least since the oldest looked at: 13:00
    assert FreshnessReader(t.fake).measure("t1", UTC, midnight).hours == 23.0  # the 00:00 window, found


# ---------------------------------------------------------------------------- the schedule tick


def _emf_docs(output: str) -> list[dict[str, Any]]:
    docs = []
    for line in output.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            docs.append(doc)
    return docs


def test_a_schedule_tick_reports_freshness_per_tenant_and_the_stalest(
    aws: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, capsys: Any
) -> None:
    monkeypatch.setenv("TENANT_ACCOUNT_IDS", "acct001,acct002")
    monkeypatch.setenv("EXPORT_START_TIME", "2026-11-21T12:00:00")
    from exporter import ccfs_factory
    from exporter.config import get_settings

    get_settings.cache_clear()
    handler = load_handler("request_export")
    ccfs = FakeCcfs()
    monkeypatch.setattr(ccfs_factory, "ccfs_client", lambda settings, tenant: ccfs)
    monkeypatch.setattr(handler, "utc_now", lambda: NOW)
    store = JobStore(aws.jobs_table)
    claim = WindowClaim("acct002", window(16), "call_record", "acct002", "backfill")
    assert store.claim_backfill_window(claim, NOW - timedelta(hours=1))
    assert store.window_no_data(claim, NOW - timedelta(hours=1))  # acct002: complete up to 17:00 local

    handler.lambda_handler(json.loads((EVENTS / "schedule.json").read_text()), lambda_context)

    points = {
        (tuple(sorted(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])), d.get("tenant")): d["ExportFreshnessHours"]
        for d in _emf_docs(capsys.readouterr().out)
        if "ExportFreshnessHours" in d
    }
    # TENANT_TIMEZONE Asia/Shanghai: NOW is 18:00 local. acct001's windows from 12:00 are requested,
    # none complete: missing since 12:00 local (6 h); acct002's no-data window ended at 17:00 (1 h).
    per_tenant = ("service", "tenant")
    assert points == {
        (per_tenant, "acct001"): [6.0],
        (per_tenant, "acct002"): [1.0],
        (("service",), None): [6.0],  # the stalest tenant: FreshnessAlarm's metric
    }
