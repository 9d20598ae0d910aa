"""The in-memory jobs table (tests/fakes) answers as DynamoDB (moto) does.

One script drives every write of ``JobStore`` and ``Progress`` (each success and each refusal)
twice: on moto and on ``FakeJobsTable``. The answers, the items read back and the whole table
afterwards must be the same, so a test that uses the fake tests the product's real expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter import aws as exporter_aws
from exporter.jobs.freshness import FreshnessReader
from exporter.jobs.items import NewJob, RecordingOutcome, WindowClaim
from exporter.jobs.keys import JobStatus
from exporter.jobs.progress import BILL_PROCESSED, JobMissing, Progress
from exporter.jobs.store import JobStore
from exporter.jobs.table import JobsTable, from_ddb
from exporter.planner import Window
from tests.fakes.jobs_table import FakeJobsTable

T = datetime(2026, 11, 21, 17, 5, tzinfo=UTC)
W1 = Window.from_sk("2026-11-21 15:00:00|2026-11-21 15:59:59")
W2 = Window.from_sk("2026-11-21 16:00:00|2026-11-21 16:59:59")
RID, RID2, RID3, LATE = "a" * 32, "b" * 32, "c" * 32, "d" * 32


def script(store: JobStore, progress: Progress) -> list[Any]:
    """Every store and progress write, in an order that makes each one succeed and then refuse."""
    seen: list[Any] = []
    note = seen.append
    a1 = WindowClaim("acct001", W1, "call_record", "acct001", "schedule")
    a2 = WindowClaim("acct001", W2, "call_record", "acct001", "backfill")

    note(store.init_cursor("acct001", "2026-11-21 15:00:00", T))
    note(store.init_cursor("acct001", "2026-11-21 09:00:00", T))
    note(store.get_cursor("acct001"))
    note(store.claim_scheduled_window(a1, expected_cursor="2026-11-21 15:00:00", now=T))
    note(store.claim_scheduled_window(a1, expected_cursor="2026-11-21 16:00:00", now=T))
    note(store.get_cursor("acct001"))
    note(store.lease_window(a1, T))
    note(store.lease_window(a1, T + timedelta(seconds=10)))  # held
    note(store.note_window_error(a1, "HTTP 503", T))
    note(store.get_window("acct001", W1))
    note([w.claim for w in store.claimed_windows(T + timedelta(minutes=1))])
    note(store.record_requested(NewJob(RID, a1, 1), T))
    note(store.record_requested(NewJob(RID2, a1, 1), T))  # window no longer CLAIMED
    note(store.fail_window(a1, "x", T))
    note(store.window_no_data(a1, T))

    # an unsolicited callback first, then the request that adopts it
    note(store.claim_backfill_window(a2, T))
    note(store.claim_backfill_window(a2, T))
    note(store.put_unsolicited(RID3, "20261121_c.zip", "acct001", "acct001", T, owned=frozenset({"acct001"})))
    note(store.put_unsolicited(RID3, "20261121_c.zip", "acct001", None, T))
    note(store.record_requested(NewJob(RID3, a2, 1), T))
    b2 = WindowClaim("acct002", W2, "call_record", "acct002", "backfill")
    note(store.claim_backfill_window(b2, T))
    note(store.link_existing_job(NewJob(RID3, b2, 1), T))  # signed for acct001 only
    note(store.link_existing_job(NewJob(RID3, a2, 1), T))
    note(store.get_job(RID3))

    # re-request of a lost callback
    job = store.get_job(RID)
    assert job is not None
    later = T + timedelta(minutes=40)
    note(store.lease_job(job, later))
    note(store.lease_job(job, later))
    note(store.supersede(job, NewJob(RID2, a1, 2), later))
    note(store.supersede(job, NewJob(RID2, a1, 2), later))
    note([j.response_id for j in store.jobs_in(JobStatus.REQUESTED, later + timedelta(minutes=1))])
    note(store.record_superseded_callback(RID, "20261121_a.zip", later))
    note(store.record_superseded_callback(RID, "20261121_a.zip", later))
    new = store.get_job(RID2)
    assert new is not None
    note(store.fail_requested_job(new, "no callback after 2 attempts", later))
    note(store.get_window("acct001", W1))
    note(store.mark_ready(RID2, "20261121_b.zip", later, from_status=JobStatus.FAILED))
    note(store.clear_failed_window(str(new.window_pk), str(new.window_sk), RID2))
    note(store.mark_ready(RID2, "20261121_b.zip", later, from_status=JobStatus.FAILED))  # has its callback
    note(store.set_bill_enqueued(RID2))
    note(store.set_bill_enqueued(LATE))  # no such job

    # the download side
    note(progress.begin_download(RID2))
    note(progress.begin_download(RID2)[0])
    note(progress.save_bill_results(RID2, {"recordings_total": 2, BILL_PROCESSED: "2026-11-21T17:45:00Z"}))
    note(progress.record_recording(RID2, RecordingOutcome("c-1", "s1", "/r/s1.wav", "FAILED", error="gone")))
    note(progress.record_recording(RID2, RecordingOutcome("c-1", "s1", "/r/s1.wav", "FAILED", error="gone")))
    with pytest.raises(JobMissing):
        progress.record_recording(LATE, RecordingOutcome("c-1", "s1", "/r/s1.wav", "FAILED", error="gone"))
    done = RecordingOutcome("c-2", "s2", "/r/s2.wav", "DONE", "k2", 4, "e" * 64, "obs")
    note(progress.record_recording(RID2, done))
    note(progress.maybe_complete(RID2))
    note(progress.maybe_complete(RID2))
    again = RecordingOutcome("c-1", "s1", "/r/s1.wav", "DONE", "k1", 3, "f" * 64, "obs")
    note(progress.upgrade_failed(RID2, again))
    note(progress.upgrade_failed(RID2, again))
    note(list(progress.iter_recordings(RID2)))
    note(progress.get_job(RID2))
    note(progress.fail_job(RID2, "late"))
    stalled = store.get_job(RID3)
    assert stalled is not None
    note(store.fail_stalled_job(stalled, "stalled", later))
    return seen


def _plain_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (i["pk"], i["sk"]))


@pytest.fixture
def run(aws: Any) -> Callable[[bool], tuple[list[Any], list[dict[str, Any]]]]:
    ddb, s3 = exporter_aws.client("dynamodb"), exporter_aws.client("s3")

    def run(fake: bool) -> tuple[list[Any], list[dict[str, Any]]]:
        table: Any = FakeJobsTable(aws.jobs_table) if fake else JobsTable(ddb, aws.jobs_table)
        clock = iter([T + timedelta(minutes=45 + n) for n in range(100)])
        store = JobStore(aws.jobs_table, jobs_table=table)
        progress = Progress(ddb, s3, aws.jobs_table, aws.bucket, clock=lambda: next(clock), jobs_table=table)
        seen = script(store, progress)
        seen.append(FreshnessReader(table).measure("acct001", UTC, T))  # a newest-first query
        if fake:
            return seen, _plain_items(list(table.items.values()))
        scanned = ddb.scan(TableName=aws.jobs_table, ConsistentRead=True)["Items"]
        return seen, _plain_items([from_ddb(i) for i in scanned])

    return run


def test_the_fake_jobs_table_answers_as_dynamodb_does(run: Any) -> None:
    real_seen, real_items = run(False)
    fake_seen, fake_items = run(True)
    assert fake_seen == real_seen
    assert fake_items == real_items
    assert len(real_items) == 9  # the cursor, 3 windows, 3 jobs, 2 REC items
    answers = [a for a in real_seen if isinstance(a, bool)]
    assert answers.count(True) >= 15 and answers.count(False) >= 15  # both sides of the conditions ran
