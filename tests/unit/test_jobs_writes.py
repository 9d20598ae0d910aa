"""The jobs table's one conditional-write helper (``exporter.jobs.writes``) and the ``JobStore``
facade over its parts, on the in-memory table (moto-vs-fake agreement: test_jobs_table_fake.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.jobs import store as store_module
from exporter.jobs.items import NewJob, WindowClaim, epoch
from exporter.jobs.keys import JobStatus, job_key
from exporter.jobs.store import JobStore
from exporter.jobs.writes import IfAbsent, Put, transact, update
from exporter.planner import Window
from tests.fakes.jobs_table import FakeJobsTable

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CLAIM = WindowClaim(
    "acct001", Window.from_sk("2026-11-21 10:00:00|2026-11-21 10:59:59"), "call_record", None, "backfill"
)
KEY = job_key("r1")
AT = (KEY["pk"], KEY["sk"])
OTHER = job_key("r2")


def test_an_update_changes_the_item_only_while_it_holds_what_was_expected() -> None:
    table = FakeJobsTable()
    assert Put({**KEY, "job_status": "REQUESTED", "error": "old", "n": 1}).apply(table)
    change = update(
        KEY,
        expect={"job_status": JobStatus.REQUESTED},
        set={"job_status": JobStatus.FAILED, "error": "why", "callback_at": IfAbsent("t1")},
        remove=("n",),
        add={"tries": 2},
    )
    assert change.apply(table)
    assert table.items[AT] == {
        **KEY,
        "job_status": "FAILED",
        "error": "why",
        "callback_at": "t1",
        "tries": 2,
    }
    assert not change.apply(table)  # no longer REQUESTED: refused, nothing changed
    assert table.items[AT]["tries"] == 2


def test_a_transaction_of_writes_is_all_or_nothing_and_says_which_was_refused() -> None:
    table = FakeJobsTable()
    assert Put({**KEY, "job_status": "READY"}).apply(table)
    reasons = transact(
        table, Put({**OTHER, "job_status": "REQUESTED"}), update(KEY, expect={"job_status": "REQUESTED"}, set={"x": 1})
    )
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert (OTHER["pk"], OTHER["sk"]) not in table.items
    assert transact(table, Put({**OTHER}), update(KEY, when="attribute_exists(pk)", set={"x": 1})) is None
    assert table.items[AT]["x"] == 1 and (OTHER["pk"], OTHER["sk"]) in table.items


def test_an_update_without_a_condition_or_a_change_is_refused_before_it_is_sent() -> None:
    with pytest.raises(ValueError, match="at least one change and a condition"):
        update(KEY, set={"x": 1})
    with pytest.raises(ValueError, match="at least one change and a condition"):
        update(KEY, expect={"x": 1})


def test_the_lease_length_is_read_when_a_store_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local stack shortens leases by setting ``exporter.jobs.store.LEASE_SECONDS`` after import
    (local/stack/config.py TIME_PATCHES): every part of the facade must lease for that long."""
    monkeypatch.setattr(store_module, "LEASE_SECONDS", 15)
    table = FakeJobsTable()
    store = JobStore("jobs", jobs_table=table)
    assert store.claim_backfill_window(CLAIM, NOW)
    assert table.items[(CLAIM.key["pk"], CLAIM.key["sk"])]["lease_until"] == epoch(NOW) + 15
    later = NOW + timedelta(seconds=16)
    assert store.lease_window(CLAIM, later)  # the claim's 15 s lease ran out
    assert table.items[(CLAIM.key["pk"], CLAIM.key["sk"])]["lease_until"] == epoch(later) + 15
    assert not store.lease_window(CLAIM, later)  # held
    store.record_requested(NewJob("r1", CLAIM, 1), later)
    job = store.get_job("r1")
    assert job is not None
    assert store.lease_job(job, later)
    assert store.get_job("r1").lease_until == epoch(later) + 15  # type: ignore[union-attr]
