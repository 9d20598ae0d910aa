"""Job progress: state transitions, counting a recording once, completion and the manifest.

On the in-memory jobs table and S3 (tests/fakes); one test stays on moto, where the point is how
DynamoDB's cancelled transaction reaches the domain (the fake's agreement with moto on every other
write: test_jobs_table_fake.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from exporter import aws as exporter_aws
from exporter.aws import metrics
from exporter.jobs.items import RecordingOutcome
from exporter.jobs.keys import JobStatus
from exporter.jobs.progress import BILL_PROCESSED, JOB_METRICS, JobMissing, Progress
from tests.conftest import emf_totals
from tests.fakes.jobs_table import FakeJobsTable
from tests.fakes.s3 import FakeS3
from tests.helpers import fast_clients, job_item

RID = "9239cb50a8384bb0ab503441bf089446"
BUCKET = "export-bucket"


@pytest.fixture
def table() -> FakeJobsTable:
    return FakeJobsTable()


@pytest.fixture
def s3() -> FakeS3:
    return FakeS3()


@pytest.fixture
def progress(table: FakeJobsTable, s3: FakeS3) -> Iterator[Progress]:
    yield Progress(ddb=None, s3=s3, table=table.name, bucket=BUCKET, jobs_table=table)
    metrics.clear_metrics()  # added outside a handler: never let them reach another test's flush


def seed_job(table: FakeJobsTable, status: str = "DOWNLOADING", **extra: Any) -> None:
    table.seed(job_item(status, **extra))


def manifest(s3: FakeS3, rid: str = RID) -> dict[str, Any]:
    body, content_type = (
        s3.objects[(BUCKET, f"manifests/{rid}.json")],
        s3.content_types[(BUCKET, f"manifests/{rid}.json")],
    )
    assert content_type == "application/json"
    return json.loads(body)


def done(call_id: str, stem: str, size: int = 10) -> RecordingOutcome:
    key = f"recordings/account_id=acct001/call_date=2018-07-02/{call_id}/{stem}.wav"
    return RecordingOutcome(call_id, stem, f"/r/{stem}.wav", "DONE", key, size, "a" * 64, "obs")


def test_begin_download_transitions(table, progress):
    seed_job(table, "READY")
    state, job = progress.begin_download(RID)
    assert state == "started" and job.job_status == "DOWNLOADING"
    assert progress.begin_download(RID)[0] == "resumed"
    seed_job(table, "COMPLETED")
    assert progress.begin_download(RID)[0] == "skip"
    with pytest.raises(JobMissing):
        progress.begin_download("0" * 32)


def test_a_recording_counts_once(table, progress):
    seed_job(table, recordings_total=2, **{BILL_PROCESSED: "2018-07-02T02:00:00Z"})
    assert progress.record_recording(RID, done("c-1", "s1")) is True
    assert progress.record_recording(RID, done("c-1", "s1")) is False  # redelivery
    failed = RecordingOutcome("c-2", "s2", "/r/s2.wav", "FAILED", error="recording URL host not allowed: x")
    assert progress.record_recording(RID, failed) is True
    assert progress.record_recording(RID, failed) is False
    job = progress.get_job(RID)
    assert (job.recordings_done, job.recordings_failed) == (1, 1)
    rec = progress.get_recording(RID, "c-2", "s2")
    assert rec.status == "FAILED" and rec.file_name == "/r/s2.wav" and (rec.expires_at or 0) > 0


def test_recording_for_an_unknown_job_is_an_error(progress, table):
    with pytest.raises(JobMissing):
        progress.record_recording("f" * 32, done("c-1", "s1"))
    assert progress.get_recording("f" * 32, "c-1", "s1") is None  # the transaction wrote nothing
    assert table.items == {}


def test_recording_for_an_unknown_job_is_an_error_on_dynamodb(aws, monkeypatch):
    """The wire path: DynamoDB cancels the transaction (its job update's condition), the REC put with it."""
    fast_clients(monkeypatch)
    on_moto = Progress(exporter_aws.client("dynamodb"), exporter_aws.client("s3"), aws.jobs_table, aws.bucket)
    with pytest.raises(JobMissing):
        on_moto.record_recording("f" * 32, done("c-1", "s1"))
    assert on_moto.get_recording("f" * 32, "c-1", "s1") is None


def test_no_completion_before_the_bill_results_are_saved(table, progress):
    seed_job(table)  # recordings_total 0 from the job's creation is not final yet
    assert progress.maybe_complete(RID) is None
    assert progress.get_job(RID).job_status == "DOWNLOADING"


def test_completion_writes_the_final_manifest_once(table, s3, progress):
    seed_job(table, recordings_total=2, bad_rows=1, **{BILL_PROCESSED: "2018-07-02T02:00:00Z"})
    base = progress.manifests.base(progress.get_job(RID), JobStatus.DOWNLOADING)
    base.update(
        {
            "cdr": [{"key": "cdr/x.csv", "rows": 3}],
            "bad_rows": [{"file": "e_call_1.csv", "line": 4, "reason": "bad"}],
            "unexpected_entries": ["readme.txt"],
        }
    )
    progress.manifests.write(RID, base)
    progress.record_recording(RID, done("c-1", "s1", 44))
    assert progress.maybe_complete(RID) is None  # 1 of 2
    progress.record_recording(RID, RecordingOutcome("c-2", "s2", "/r/s2.wav", "FAILED", error="redirect refused"))
    assert progress.maybe_complete(RID) is JobStatus.PARTIAL
    assert progress.maybe_complete(RID) is None  # already completed: nothing twice
    job = progress.get_job(RID)
    assert job.job_status == "PARTIAL" and job.completed_at is not None  # a recording failed: never COMPLETED
    doc = manifest(s3)
    assert doc["status"] == "PARTIAL"
    assert doc["counts"]["recordings_done"] == 1 and doc["counts"]["recordings_failed"] == 1
    assert doc["cdr"] == [{"key": "cdr/x.csv", "rows": 3}]
    assert doc["bad_rows"] == [{"file": "e_call_1.csv", "line": 4, "reason": "bad"}]
    assert doc["unexpected_entries"] == ["readme.txt"]
    assert doc["recordings"] == [
        {
            "call_id": "c-1",
            "file_name": "/r/s1.wav",
            "key": "recordings/account_id=acct001/call_date=2018-07-02/c-1/s1.wav",
            "size": 44,
            "sha256": "a" * 64,
            "source": "obs",
        }
    ]
    assert doc["failures"] == [{"call_id": "c-2", "file_name": "/r/s2.wav", "reason": "redirect refused"}]


@pytest.mark.parametrize(
    ("extra", "failed", "status"),
    [
        ({}, False, "COMPLETED"),
        ({}, True, "PARTIAL"),
        ({"unexpected_entries": ["readme.txt"]}, False, "PARTIAL"),
        ({"empty_entries": ["x_record_1.csv"]}, False, "COMPLETED"),  # header only: no recordings, not a loss
    ],
)
def test_a_job_with_anything_missing_completes_partial_and_is_counted(
    table, s3, progress, capsys, extra, failed, status
):
    seed_job(table, recordings_total=1, **extra, **{BILL_PROCESSED: "2018-07-02T02:00:00Z"})
    outcome = RecordingOutcome("c-1", "s1", "/r/s1.wav", "FAILED", error="gone") if failed else done("c-1", "s1", 4)
    progress.record_recording(RID, outcome)
    capsys.readouterr()
    final = progress.maybe_complete(RID)
    assert final == progress.get_job(RID).job_status == manifest(s3)["status"] == status
    assert JOB_METRICS[final] == ("JobsCompleted" if status == "COMPLETED" else "JobsPartial")  # counted by the caller
    metrics.flush_metrics()
    assert emf_totals(capsys.readouterr().out) == {}  # the domain returns the outcome, never emits


def test_fail_job_only_from_downloading(table, progress):
    seed_job(table, "COMPLETED")
    assert progress.fail_job(RID, "boom") is False
    seed_job(table)
    assert progress.fail_job(RID, "boom") is True
    job = progress.get_job(RID)
    assert job.job_status == "FAILED" and job.error == "boom"
