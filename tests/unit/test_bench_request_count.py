"""The bench's AWS request counter counts (issue 13: "≤ 4 AWS requests per recording, counted by the
bench, not estimated"): the same instrumentation ``bench.child`` puts on the download handler, run
here in-process against moto with a small fake CC-FS, must report exactly the recording's four
operations; the naive script's session counter must see its one PutObject.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3

from bench.awscount import RequestCounter
from bench.child import count_requests
from exporter import aws as exporter_aws
from tests.conftest import load_handler
from tests.fakes.ccfs import FakeCcfs

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "recording_message.json").read_text())
RID = json.loads(EVENT["Records"][0]["body"])["responseId"]
FOUR = {"dynamodb:GetItem": 1, "dynamodb:TransactWriteItems": 1, "s3:PutObject": 2}


def small_ccfs() -> FakeCcfs:
    """CC-FS answering the event's recording URLs; object storage serving 2 KB per recording; the
    happy path never falls back to downloadRecordFile."""
    fake = FakeCcfs(fallback=False)
    for record in EVENT["Records"]:
        fake.add(json.loads(record["body"]), b"RIFF" + b"\0" * 2044)
    return fake


def _seed_job(names: Any, total: int) -> None:
    item = {
        "pk": f"JOB#{RID}",
        "sk": "JOB",
        "response_id": RID,
        "tenant": "acct001",
        "account_id": "acct001",
        "job_status": "DOWNLOADING",
        "status_at": "2018-07-02T02:00:00Z",
        "bill_file_name": f"20180702_{RID}.zip",
        "bill_processed_at": "2018-07-02T02:00:00Z",
        "recordings_total": total,
        "recordings_done": 0,
        "recordings_failed": 0,
    }
    exporter_aws.resource("dynamodb").Table(names.jobs_table).put_item(Item=item)


def _event(names: Any) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    arn = f"arn:aws:sqs:us-east-1:123456789012:{names.recording_queue_url.rsplit('/', 1)[-1]}"
    for record in event["Records"]:
        record["eventSourceARN"] = arn
    return event


def test_the_bench_counts_the_four_requests_of_each_recording(aws, monkeypatch, lambda_context):
    _seed_job(aws, total=3)  # two of three: neither recording completes the job
    fake = small_ccfs()
    app = load_handler("download")
    monkeypatch.setattr(app, "ccfs_client", lambda settings, tenant: fake)
    monkeypatch.setattr(app, "recording_http", lambda settings: fake.http)
    counter = count_requests(app)  # what bench.child does to the handler it measures
    try:
        assert app.lambda_handler(_event(aws), lambda_context) == {"batchItemFailures": []}
    finally:
        for service in ("s3", "dynamodb", "sqs", "secretsmanager", "ssm"):
            counter.detach(exporter_aws.client(service).meta.events)

    counted = counter.summary(recordings=2)
    assert counted["per_recording"] == 4
    assert counted["per_recording_operations"] == FOUR
    assert counted["records"] == [{"records": 2, "requests": 4, "operations": FOUR}]
    assert counted["per_recording_mean"] == 4.0
    assert counted["by_operation"] == {op: 2 * n for op, n in FOUR.items()}
    assert counted["outside_records"] == {} and counted["per_sandbox"] == {}
    assert counted["http_attempts"] == 8 and counted["retries"] == 0
    assert (
        exporter_aws.resource("dynamodb")
        .Table(aws.jobs_table)
        .get_item(Key={"pk": f"JOB#{RID}", "sk": "JOB"})["Item"]["recordings_done"]
        == 2
    )


def test_a_session_counter_counts_the_clients_made_afterwards(aws):
    """The naive script's counter: on boto3's default session before its client exists."""
    session = boto3.session.Session()
    counter = RequestCounter()
    counter.attach(session.events)
    s3 = session.client("s3")
    for n in range(3):
        s3.put_object(Bucket=aws.bucket, Key=f"naive/{n}.wav", Body=b"x")
    counted = counter.summary(recordings=3)
    assert counted["per_recording"] == 1.0 and counted["records"] == []
    assert counted["by_operation"] == {"s3:PutObject": 3} and counted["outside_records"] == {"s3:PutObject": 3}
    assert counted["per_recording_mean_by_operation"] == {"s3:PutObject": 1.0}
