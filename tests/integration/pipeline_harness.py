"""The in-process pipeline (the three handlers, moto, the CC-FS simulator, a receiver playing API
Gateway) shared by ``test_pipeline.py`` and ``test_no_secrets_in_logs.py``.

No worker processes and no moto server here (that is tests/e2e): moto's in-process mock, the real
simulator over TLS with its CA bundle in SSM, the ak/sk in Secrets Manager, and a small HTTP
receiver that plays API Gateway for the callback. The assertions compare S3 with the simulator's
ground truth independently of the local stack's own verifier.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from local.ccfs_simulator import Faults, Simulator, TenantSpec
from local.stack.processes.events import api_gateway_event, scheduled_event, sqs_event
from tests.conftest import FakeLambdaContext, load_handler, reset_process_caches

__all__ = [
    "FMT",
    "STAGE",
    "ZONE",
    "CallbackReceiver",
    "Pipeline",
    "assert_s3_equals_truth",
    "csv_rows",
    "demo_day",
    "pipeline_factory",
    "s3_tree",
]

ZONE = "Asia/Shanghai"
FMT = "%Y-%m-%d %H:%M:%S"
STAGE = "v1"


class CallbackReceiver:
    """Plays API Gateway + the callback function: HTTP in, REST proxy event, handler, HTTP out."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.lock = threading.Lock()  # one request at a time, like one warm Lambda instance
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = api_gateway_event(
                    method="POST",
                    raw_path=self.path,
                    resource="/ccfs/callback",
                    stage=STAGE,
                    headers=list(self.headers.items()),
                    query={},
                    body=body,
                    source_ip=self.client_address[0],
                    host=self.headers.get("Host", ""),
                )
                with receiver.lock:
                    result = receiver.handler.lambda_handler(event, FakeLambdaContext(function_name="callback"))
                receiver.statuses.append(result["statusCode"])
                payload = result.get("body", "").encode()
                self.send_response(result["statusCode"])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{STAGE}/ccfs/callback"

    def __enter__(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Pipeline:
    def __init__(self, names: Any, sim: Simulator, receiver: CallbackReceiver) -> None:
        self.names, self.sim, self.receiver = names, sim, receiver
        self.request_export = load_handler("request_export")
        self.download = load_handler("download")
        self.sqs = boto3.client("sqs")
        self.crash_after: int | None = None  # records handled before an injected crash (once)

    def arn(self, queue_url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return attrs["Attributes"]["QueueArn"]

    def tick(self) -> None:
        event = scheduled_event("arn:aws:events:us-east-1:123456789012:rule/aicc-export-schedule")
        self.request_export.lambda_handler(event, FakeLambdaContext(function_name="request_export"))

    def drain(self, queue_url: str, batch: int) -> int:
        """Deliver every visible message of a queue to the download handler, as an ESM would."""
        handled = 0
        arn = self.arn(queue_url)
        for _ in range(1000):  # bounded
            messages = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=batch, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return handled
            event = sqs_event(messages, arn)
            if self.crash_after is not None and len(messages) > 1:
                done, self.crash_after = self.crash_after, None
                self._crash_mid_batch(queue_url, event, messages, done)
                continue  # nothing deleted: the whole batch comes back, as after a Lambda crash
            result = self.download.lambda_handler(event, FakeLambdaContext(function_name="download"))
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    self.sqs.change_message_visibility(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
            handled += len(messages)
        raise AssertionError("queue never drained")

    def _crash_mid_batch(self, queue_url: str, event: dict[str, Any], messages: list[Any], done: int) -> None:
        """Run the first ``done`` records of a batch for real, then 'crash': no response, so the
        event source mapping deletes nothing and every record of the batch is delivered again."""
        partial = {"Records": event["Records"][:done]}
        self.download.lambda_handler(partial, FakeLambdaContext(function_name="download"))
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

    def jobs(self) -> list[dict[str, Any]]:
        table = boto3.resource("dynamodb").Table(self.names.jobs_table)
        items = table.scan()["Items"]
        return [i for i in items if i["pk"].startswith("JOB#") and i["sk"] == "JOB"]

    def wait_for_callbacks(self, timeout: float = 30.0) -> None:
        """Bounded poll until no job waits for its callback (the simulator calls back asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(j["job_status"] == "REQUESTED" for j in self.jobs()):
                return
            time.sleep(0.05)
        raise AssertionError(f"callbacks did not arrive: {[j['job_status'] for j in self.jobs()]}")

    def run(self) -> None:
        self.tick()
        self.wait_for_callbacks()
        for _ in range(20):  # bounded: bill messages fan out recording messages
            moved = self.drain(self.names.bill_queue_url, 1) + self.drain(self.names.recording_queue_url, 10)
            if not moved:
                break
        assert all(j["job_status"] == "COMPLETED" for j in self.jobs()), Counter(j["job_status"] for j in self.jobs())


@pytest.fixture
def pipeline_factory(
    aws: Any, ccfs_sim_factory: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Pipeline]]:
    receivers: list[CallbackReceiver] = []

    def make(tenants: list[TenantSpec], day: date, faults: Faults | None = None, **env: str) -> Pipeline:
        sim = ccfs_sim_factory(tenants=tenants, base_date=day, days=1, faults=faults or Faults())
        sm, ssm = boto3.client("secretsmanager"), boto3.client("ssm")
        sm.put_secret_value(SecretId=aws.secret_arn, SecretString=json.dumps({"ak": sim.ak, "sk": sim.sk}))
        ssm.put_parameter(Name="/aicc/ccfs-ca", Value=Path(sim.ca_bundle).read_text(), Type="String")
        # The simulator's object store (here on CC-FS's own server, with its CA) is trusted as an LSS
        # with a private CA would be: a bundle of its own, not the CC-FS one.
        ssm.put_parameter(Name="/aicc/obs-ca", Value=Path(sim.obs_ca_bundle).read_text(), Type="String")
        receiver = CallbackReceiver(load_handler("callback")).__enter__()
        receivers.append(receiver)
        settings = {
            "CCFS_BASE_URL": sim.base_url,
            "CCFS_CA_BUNDLE_PARAM": "/aicc/ccfs-ca",
            "TENANT_ACCOUNT_IDS": ",".join(t.account_id for t in tenants),
            "TENANT_TIMEZONE": ZONE,
            "WINDOW_MINUTES": "1440",
            "EXPORT_START_TIME": f"{day.isoformat()}T00:00:00",
            "CALLBACK_URL": receiver.url,
            "RECORDING_URL_HOST_SUFFIXES": f"{sim.obs_host}:{sim.obs_port}",
            "RECORDING_CA_BUNDLE_PARAM": "/aicc/obs-ca",
            **env,
        }
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        reset_process_caches()
        return Pipeline(aws, sim, receiver)

    yield make
    for receiver in receivers:
        receiver.__exit__(None, None, None)


def s3_tree(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def csv_rows(tree: dict[str, bytes], prefix: str) -> Counter[tuple[tuple[str, str], ...]]:
    rows: Counter[tuple[tuple[str, str], ...]] = Counter()
    for key, data in tree.items():
        if key.startswith(prefix):
            for row in csv.DictReader(io.StringIO(data.decode("utf-8"))):
                rows[tuple(sorted(row.items()))] += 1
    return rows


def assert_s3_equals_truth(pipe: Pipeline, tenants: list[TenantSpec], day: date) -> dict[str, int]:
    begin, end = datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time())
    end = end.replace(microsecond=0)
    tree = s3_tree(pipe.names.bucket)
    cdr: Counter[Any] = Counter()
    index: Counter[Any] = Counter()
    recordings = []
    for tenant in tenants:
        truth = pipe.sim.truth(tenant.account_id, begin, end)
        cdr.update(tuple(sorted(r.items())) for r in truth.cdr_rows)
        index.update(tuple(sorted(r.items())) for r in truth.index_rows)
        recordings.extend(truth.recordings)
    assert cdr and index and recordings, "the synthetic day must have calls and recordings"
    assert csv_rows(tree, "cdr/") == cdr
    assert csv_rows(tree, "recording_index/") == index

    wavs = {k for k in tree if k.startswith("recordings/") and k.endswith(".wav")}
    assert len(wavs) == len(recordings)
    s3 = boto3.client("s3")
    for rec in recordings:
        call_day = datetime.strptime(rec.call_begin, FMT).date().isoformat()
        stem = rec.file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        key = f"recordings/account_id={rec.account_id}/call_date={call_day}/{rec.call_id}/{stem}.wav"
        body = tree[key]
        assert (len(body), hashlib.sha256(body).hexdigest()) == (rec.size, rec.sha256), key
        head = s3.head_object(Bucket=pipe.names.bucket, Key=key)
        assert head["Metadata"]["sha256"] == rec.sha256
        sidecar = json.loads(tree[key[: -len(".wav")] + ".json"])
        assert sidecar["sha256"] == rec.sha256 and sidecar["row"]["file_name"] == rec.file_name
    assert not [k for k in tree if k.startswith("_staging/")]
    assert not s3.list_multipart_uploads(Bucket=pipe.names.bucket).get("Uploads")
    jobs = pipe.jobs()
    assert sum(int(j["recordings_total"]) for j in jobs) == len(recordings)
    for job in jobs:
        # A job first stored from a callback that beat its request (UNSOLICITED, then linked) has no
        # counter attributes until a recording counts: absent is 0, as the product reads it.
        done, failed = int(job.get("recordings_done", 0)), int(job.get("recordings_failed", 0))
        assert (done, failed) == (int(job["recordings_total"]), 0)
        manifest = json.loads(tree[f"manifests/{job['response_id']}.json"])
        assert manifest["status"] == "COMPLETED" and manifest["failures"] == []
    for dlq in (pipe.names.bill_dlq_url, pipe.names.recording_dlq_url):
        attrs = pipe.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    return {"cdr": sum(cdr.values()), "index": sum(index.values()), "recordings": len(recordings), "jobs": len(jobs)}


def demo_day() -> date:
    """Three days ago (tenant-local): the day and the next are both settled whatever the time of
    day. With two days ago, the next day's window was not yet due in the first ``SETTLE_MINUTES``
    after midnight (Shanghai), so tests expecting two windows per tenant failed at that hour."""
    return (datetime.now(ZoneInfo(ZONE)) - timedelta(days=3)).date()
