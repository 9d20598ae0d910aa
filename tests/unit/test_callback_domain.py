"""The callback's domain step (``exporter.callbacks``) on the in-memory jobs table: no moto, no
handler, no network. What a callback does to the job, which bill it sends, and what it costs in
table requests (the handler-level tests in test_callback.py cover the HTTP edge)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ccfs.models import BillCallbackBody
from exporter.callbacks import CallbackOutcome, process_callback, promote_early_callback
from exporter.jobs.items import NewJob, WindowClaim
from exporter.jobs.keys import JobStatus
from exporter.jobs.store import JobStore
from exporter.messages import BillMessage
from exporter.planner import Window
from tests.fakes.jobs_table import FakeJobsTable
from tests.fakes.queues import FakeQueue

NOW = datetime(2018, 7, 2, 2, 0, tzinfo=UTC)
RID = "9239cb50a8384bb0ab503441bf089446"
NAME = f"20180702_{RID}.zip"
CLAIM = WindowClaim("acct001", Window.from_sk("2018-07-02 00:00:00|2018-07-02 00:59:59"), "call_record", "acct001", "")
OWNED = frozenset({"acct001"})


@pytest.fixture
def table() -> FakeJobsTable:
    return FakeJobsTable()


@pytest.fixture
def store(table: FakeJobsTable) -> JobStore:
    return JobStore("jobs", jobs_table=table)


def requested(store: JobStore) -> None:
    assert store.claim_backfill_window(CLAIM, NOW - timedelta(minutes=30))
    store.record_requested(NewJob(RID, CLAIM, 1), NOW - timedelta(minutes=20))


def callback(store: JobStore, bills: FakeQueue, *, allow: bool = False, **body: str) -> CallbackOutcome:
    parsed = BillCallbackBody.model_validate({"responseId": RID, "billFileName": NAME, **body})
    return process_callback(store, bills.send, parsed, allow_unsolicited=allow, now=NOW, owned=OWNED)


def test_a_callback_readies_its_job_once_in_three_table_requests(store: JobStore, table: FakeJobsTable) -> None:
    requested(store)
    table.requests.clear()
    bills = FakeQueue()
    assert callback(store, bills, accountId="acct001") is CallbackOutcome.ACCEPTED
    assert table.requests == ["GetItem", "UpdateItem", "UpdateItem"]  # read, READY, bill_enqueued
    job = store.get_job(RID)
    assert job is not None and job.job_status is JobStatus.READY and job.bill_enqueued and job.callback_at
    assert bills.sent == [BillMessage(responseId=RID, billFileName=NAME, tenant="acct001", accountId="acct001")]
    assert callback(store, bills) is CallbackOutcome.DUPLICATE
    assert len(bills.sent) == 1  # replayed: nothing sent twice


def test_an_unknown_response_id_is_kept_for_its_ak_and_adopted_only_by_that_tenants_window(
    store: JobStore,
) -> None:
    bills = FakeQueue()
    assert callback(store, bills) is CallbackOutcome.UNSOLICITED
    job = store.get_job(RID)
    assert job is not None and job.job_status is JobStatus.UNSOLICITED and job.callback_tenants == OWNED
    other = WindowClaim("acct002", CLAIM.window, "call_record", "acct002", "")
    assert store.claim_backfill_window(other, NOW)
    assert not store.link_existing_job(NewJob(RID, other, 1), NOW)  # not acct002's callback
    assert store.claim_backfill_window(CLAIM, NOW)
    assert store.link_existing_job(NewJob(RID, CLAIM, 1), NOW)
    assert promote_early_callback(store, bills.send, RID, NOW)
    assert bills.sent == [BillMessage(responseId=RID, billFileName=NAME, tenant="acct001", accountId="acct001")]
    assert not promote_early_callback(store, bills.send, RID, NOW)  # sent once


def test_a_callback_for_another_tenants_job_changes_nothing(store: JobStore, table: FakeJobsTable) -> None:
    requested(store)
    before = {key: dict(item) for key, item in table.items.items()}
    bills = FakeQueue()
    assert callback(store, bills, accountId="acct002") is CallbackOutcome.FOREIGN
    assert table.items == before and bills.sent == []


def test_a_late_callback_revives_a_failed_job_and_its_window_leaves_the_status_index(store: JobStore) -> None:
    requested(store)
    job = store.get_job(RID)
    assert job is not None
    assert store.fail_requested_job(job, "no callback after 3 attempts", NOW - timedelta(minutes=1))
    window = store.get_window("acct001", CLAIM.window)
    assert window is not None and window.job_status is JobStatus.FAILED
    bills = FakeQueue()
    assert callback(store, bills) is CallbackOutcome.REVIVED
    assert len(bills.sent) == 1
    window = store.get_window("acct001", CLAIM.window)
    assert window is not None and window.job_status is None and window.response_id == RID
    assert callback(store, bills) is CallbackOutcome.DUPLICATE and len(bills.sent) == 1
