"""Items read from the jobs table as types: absent attributes read as the code always read them."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.jobs.items import Job, NewJob, RecordingItem, WindowClaim, WindowItem
from exporter.jobs.keys import JobStatus, job_key, recording_key, window_key
from exporter.planner import Window

RID = "9239cb50a8384bb0ab503441bf089446"
NOW = datetime(2026, 11, 21, 17, 5, tzinfo=UTC)


def test_a_bare_job_item_reads_as_empty_counters_and_no_status() -> None:
    job = Job.from_item(job_key(RID))
    assert job == Job(RID)  # responseId from the key, every counter 0, nothing else set
    assert (job.job_status, job.recordings_total, job.bill_enqueued, job.callback_tenants) == (
        None,
        0,
        False,
        frozenset(),
    )


def test_a_written_job_reads_back_as_written() -> None:
    claim = WindowClaim(
        "acct001", Window.from_sk("2026-11-21 15:00:00|2026-11-21 15:59:59"), "call_record", "acct001", ""
    )
    item = NewJob(RID, claim, 2).item(NOW, 30)
    job = Job.from_item({**item, "callback_tenants": {"acct001"}, "unexpected_entries": ["readme.txt"]})
    assert job.job_status is JobStatus.REQUESTED and job.attempt == 2 and job.tenant == "acct001"
    assert (job.window_pk, job.window_sk) == (claim.key["pk"], claim.key["sk"])
    assert job.callback_tenants == frozenset({"acct001"}) and job.unexpected_entries == ("readme.txt",)
    assert job.expires_at == item["expires_at"]


def test_a_window_item_without_a_tenant_attribute_takes_it_from_its_key() -> None:
    window = WindowItem.from_item({**window_key("acct002", "2026-11-21 15:00:00", "2026-11-21 15:59:59")})
    assert window.claim.tenant == "acct002" and window.claim.source == "schedule" and window.claim.account_id is None
    assert window.job_status is None and window.attempt == 0


def test_a_recording_item_reads_its_outcome() -> None:
    item = {**recording_key(RID, "c-1", "s1"), "status": "FAILED", "call_id": "c-1", "error": "gone", "size": 3}
    rec = RecordingItem.from_item(item)
    assert (rec.status, rec.call_id, rec.error, rec.size, rec.key) == ("FAILED", "c-1", "gone", 3, None)
