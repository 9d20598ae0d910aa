"""The download handler's recording messages, for the tests that drive it: bodies, events, the
handler on the fake CC-FS (``tests.fakes.ccfs``), what was written."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import aws as exporter_aws
from exporter.jobs.items import Job
from exporter.jobs.progress import BILL_PROCESSED, Progress
from tests.conftest import emf_totals, load_handler
from tests.fakes.ccfs import FakeCcfs, stem_of
from tests.helpers import fast_clients, seed_job

ROOT = Path(__file__).resolve().parents[2]


RID = "9239cb50a8384bb0ab503441bf089446"


EVENT = json.loads((ROOT / "events" / "recording_message.json").read_text())


FILE_BODIES = [json.loads(r["body"]) for r in EVENT["Records"]]


CALL = FILE_BODIES[0]["callId"]


MiB = 1024 * 1024


def wav(seed: str, size: int = 3000) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (b"RIFF" + block * (size // 32 + 1))[:size]


def body_for(call_id: str, stem: str, ordinal: int = 1, count: int = 1) -> dict[str, Any]:
    body = copy.deepcopy(FILE_BODIES[0])
    file_name = f"/10/1/record/100/20180702/{stem}.wav"
    body.update(callId=call_id, fileName=file_name, ordinal=ordinal, count=count)
    body["row"].update(call_id=call_id, file_name=file_name)
    return body


def final_key(body: dict[str, Any], ext: str = "wav") -> str:
    return f"recordings/account_id=acct001/call_date=2018-07-02/{body['callId']}/{stem_of(body)}.{ext}"


class BrokenStream(httpx.SyncByteStream):
    """A body that stops with a connection error after ``chunks``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def s3() -> Any:
    return exporter_aws.client("s3")  # the app's own (cached) client: see tests.helpers.fast_clients


def queue_arn(queue_url: str) -> str:
    return f"arn:aws:sqs:us-east-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"


def rec_event(names: Any, bodies: list[dict[str, Any]], receive_count: int = 1) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        record = copy.deepcopy(EVENT["Records"][0])
        record["messageId"] = f"msg-{i}-{body['callId']}-{stem_of(body)}"
        record["body"] = json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        record["eventSourceARN"] = queue_arn(names.recording_queue_url)
        records.append(record)
    return {"Records": records}


def objects(names: Any, prefix: str = "") -> list[str]:
    listing = s3().list_objects_v2(Bucket=names.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def read(names: Any, key: str) -> bytes:
    return s3().get_object(Bucket=names.bucket, Key=key)["Body"].read()


def progress(names: Any) -> Progress:
    return Progress(ddb=exporter_aws.client("dynamodb"), s3=s3(), table=names.jobs_table, bucket=names.bucket)


def assert_nothing_left_behind(names: Any) -> None:
    assert objects(names, "recordings/") == []
    assert objects(names, "_staging/") == []
    assert s3().list_multipart_uploads(Bucket=names.bucket).get("Uploads", []) == []


def emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum of every EMF metric printed so far."""
    return emf_totals(capsys.readouterr().out)


def download_with(fake: FakeCcfs, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The download handler, loaded afresh, talking to ``fake`` instead of CC-FS (fast AWS retries)."""
    fast_clients(monkeypatch)
    module = load_handler("download")
    monkeypatch.setattr(module, "ccfs_client", lambda settings, tenant: fake)
    monkeypatch.setattr(module, "recording_http", lambda settings: fake.http)
    return module


def start_job(names: Any, total: int) -> None:
    seed_job(names, "DOWNLOADING", recordings_total=total, **{BILL_PROCESSED: "2018-07-02T02:00:00Z"})
    base = {"responseId": RID, "status": "DOWNLOADING", "cdr": [{"key": "cdr/k.csv", "rows": 2}], "bad_rows": []}
    s3().put_object(Bucket=names.bucket, Key=f"manifests/{RID}.json", Body=json.dumps(base).encode())


def job(names: Any) -> Job:
    found = progress(names).get_job(RID)
    assert found is not None
    return found
