"""Download function, recording messages: pre-signed GET → staging → verified copy → REC item → completion.

CC-FS is ``tests.fakes.ccfs.FakeCcfs``: ``get_record_file_urls`` / ``download_record_file`` and an
``http`` client whose transport is an ``httpx.MockTransport`` playing object storage (every request is logged). AWS is
moto (tests/conftest.py ``aws``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from ccfs.errors import CcfsNotFound
from exporter import aws as exporter_aws
from exporter import messages, recordings
from exporter.config import ConfigError, Settings
from exporter.jobs.progress import Progress
from exporter.streams import HashingReader
from tests.fakes.ccfs import OBS, FakeCcfs, stem_of
from tests.unit.recording_helpers import (
    CALL,
    EVENT,
    FILE_BODIES,
    RID,
    BrokenStream,
    MiB,
    assert_nothing_left_behind,
    body_for,
    download_with,
    emitted,
    final_key,
    job,
    objects,
    progress,
    queue_arn,
    read,
    rec_event,
    s3,
    start_job,
    wav,
)


@pytest.fixture
def fake(aws, monkeypatch) -> FakeCcfs:
    return FakeCcfs()


@pytest.fixture
def handler(aws, fake, monkeypatch):
    return download_with(fake, monkeypatch)


# ---------------------------------------------------------------------------- happy paths


def test_recording_happy_path(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    data = fake.add(body, wav("a"))
    fake.add(FILE_BODIES[1], wav("b"))

    result = handler.lambda_handler(rec_event(aws, [body]), lambda_context)

    assert result == {"batchItemFailures": []}
    key = final_key(body)
    head = s3().head_object(Bucket=aws.bucket, Key=key)
    sha = hashlib.sha256(data).hexdigest()
    assert head["Metadata"] == {"sha256": sha, "size": str(len(data)), "response-id": RID, "call-id": CALL}
    assert head["ContentType"] == "audio/wav"
    assert read(aws, key) == data
    sidecar = json.loads(read(aws, final_key(body, "json")))
    assert sidecar["row"] == body["row"] and sidecar["sha256"] == sha and sidecar["size"] == len(data)
    assert sidecar["source"] == "obs" and sidecar["responseId"] == RID and sidecar["copied_at"].endswith("Z")
    assert objects(aws, "_staging/") == []
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None
    assert (rec.status, rec.key, rec.size, rec.sha256, rec.source) == (
        "DONE",
        key,
        len(data),
        sha,
        "obs",
    )
    assert job(aws).recordings_done == 1 and job(aws).job_status == "DOWNLOADING"
    # the URL named by the file stem was fetched, with the tenant-local window of the row
    assert [r.url.path for r in fake.requests] == [f"/rec/{CALL}/{stem_of(body)}.wav"]
    assert fake.url_calls[0][1:] == (
        recordings.parse_time(body["callBegin"]),
        recordings.parse_time(body["callEnd"]),
        "2.0",
    )
    metrics = emitted(capsys)
    assert metrics["RecordingsCopied"] == 1 and metrics["RecordingBytes"] == len(data)
    assert "SECRET" not in capsys.readouterr().out


def test_last_recording_completes_the_job(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=2)
    datas = [fake.add(b, wav(str(i), 2000 + i)) for i, b in enumerate(FILE_BODIES)]
    assert handler.lambda_handler(rec_event(aws, FILE_BODIES), lambda_context) == {"batchItemFailures": []}
    assert job(aws).job_status == "COMPLETED"
    doc = json.loads(read(aws, f"manifests/{RID}.json"))
    assert doc["status"] == "COMPLETED" and doc["cdr"] == [{"key": "cdr/k.csv", "rows": 2}]
    assert doc["counts"]["recordings_done"] == 2 and doc["failures"] == []
    assert sorted((r["key"], r["size"], r["sha256"]) for r in doc["recordings"]) == sorted(
        (final_key(b), len(d), hashlib.sha256(d).hexdigest()) for b, d in zip(FILE_BODIES, datas, strict=True)
    )
    assert emitted(capsys)["JobsCompleted"] == 1


def test_a_duplicate_delivery_writes_the_same_bytes_and_is_counted_once(aws, fake, handler, lambda_context, capsys):
    """One guard, the REC item: a second delivery of a copied recording downloads it again, but its
    conditional PutObjects leave the earlier copy as it is (one version) and it is not counted again
    (no idempotency record, no HEAD first)."""
    start_job(aws, total=2)
    s3().put_bucket_versioning(Bucket=aws.bucket, VersioningConfiguration={"Status": "Enabled"})  # as deployed
    body = FILE_BODIES[0]
    data = fake.add(body, wav("a"))
    handler.lambda_handler(rec_event(aws, [body]), lambda_context)
    capsys.readouterr()
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert read(aws, final_key(body)) == data and len(fake.url_calls) == 2
    versions = s3().list_object_versions(Bucket=aws.bucket, Prefix="recordings/")["Versions"]
    assert sorted(v["Key"] for v in versions) == [final_key(body, "json"), final_key(body)]
    assert job(aws).recordings_done == 1 and job(aws).job_status == "DOWNLOADING"
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.sha256 == hashlib.sha256(data).hexdigest()
    metrics = emitted(capsys)
    assert metrics["RecordingsDuplicate"] == 1 and "RecordingsCopied" not in metrics
    assert exporter_aws.client("dynamodb").scan(TableName=aws.idempotency_table)["Items"] == []


def test_a_copied_recording_costs_four_aws_requests(aws, fake, handler, lambda_context):
    """Happy path of one (small) recording: PutObject (recording), PutObject (sidecar), the REC
    transaction, the job read that decides completion. Counted on the handler's own clients."""
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.add(body, wav("a"))
    calls: list[str] = []
    for service in ("s3", "dynamodb", "sqs"):
        exporter_aws.client(service).meta.events.register(
            "before-call", lambda model, **kw: calls.append(model.name), unique_id=f"count-{service}"
        )
    try:
        assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    finally:
        for service in ("s3", "dynamodb", "sqs"):
            exporter_aws.client(service).meta.events.unregister("before-call", unique_id=f"count-{service}")
    assert sorted(calls) == ["GetItem", "PutObject", "PutObject", "TransactWriteItems"]


def test_expired_url_is_refreshed_once(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    data = fake.add(body, wav("a"))
    fake.routes[f"/rec/{CALL}/{stem_of(body)}.wav"] = [lambda r: httpx.Response(403, text="<Error>expired</Error>")]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert len(fake.url_calls) == 2
    assert [dict(r.url.params)["Expires"] for r in fake.requests] == ["1", "2"]  # the fresh URL was used
    assert read(aws, final_key(body)) == data
    assert emitted(capsys)["UrlRefreshes"] == 1


def test_url_refused_after_two_refreshes_is_retried_later(aws, fake, handler, lambda_context):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.add(body, wav("a"))
    fake.routes[f"/rec/{CALL}/{stem_of(body)}.wav"] = [lambda r: httpx.Response(403)] * 3
    failed = handler.lambda_handler(rec_event(aws, [body]), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert len(fake.url_calls) == 3 and len(fake.requests) == 3
    assert progress(aws).get_recording(RID, CALL, stem_of(body)) is None
    assert_nothing_left_behind(aws)


def test_not_found_falls_back_to_download_record_file(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.url_replies = [CcfsNotFound("getRecordFileUrlFromObs", "no data found", "0300012")]
    data = fake.files[body["fileName"]] = wav("fallback")
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert fake.file_calls == [body["fileName"]] and fake.requests == []
    assert read(aws, final_key(body)) == data
    head = s3().head_object(Bucket=aws.bucket, Key=final_key(body))
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads(read(aws, final_key(body, "json")))["source"] == "downloadRecordFile"
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.source == "downloadRecordFile"
    assert emitted(capsys)["RecordingFallbacks"] == 1


NOT_FOUND = CcfsNotFound("getRecordFileUrlFromObs", "no data found", "0300012")


def sent_again(names: Any) -> list[dict[str, Any]]:
    """Bodies the copier put back on RecordingQueue (visible at once: LATE_RETRY_FIRST_SECONDS patched)."""
    reply = exporter_aws.client("sqs").receive_message(
        QueueUrl=names.recording_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in reply.get("Messages", [])]


def test_not_found_anywhere_is_asked_for_again_later(aws, fake, handler, lambda_context, capsys):
    """Seed 001: a recording the index lists but CC-FS does not have is "not synced yet": the message
    comes back after a delay instead of the recording failing."""
    start_job(aws, total=1)
    body = FILE_BODIES[0]
    fake.url_replies = [NOT_FOUND]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert progress(aws).get_recording(RID, CALL, stem_of(body)) is None
    assert job(aws).job_status == "DOWNLOADING" and job(aws).recordings_failed == 0
    attributes = exporter_aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.recording_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # 300 s: SQS holds it back
    metrics = emitted(capsys)
    assert metrics["RecordingsNotYetSynced"] == 1 and "RecordingsFailed" not in metrics
    assert_nothing_left_behind(aws)


def test_a_recording_synced_later_is_copied_by_the_message_sent_again(
    aws, fake, handler, lambda_context, capsys, monkeypatch
):
    start_job(aws, total=1)
    body = FILE_BODIES[0]
    monkeypatch.setattr(recordings, "LATE_RETRY_FIRST_SECONDS", 0)
    fake.url_replies = [NOT_FOUND]
    before = datetime.now(UTC)
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    [again] = sent_again(aws)
    assert (again["hop"], again["lateRetries"]) == (1, 1)
    assert before <= datetime.fromisoformat(again["notFoundSince"]) <= datetime.now(UTC)
    assert {k: v for k, v in again.items() if k not in ("hop", "lateRetries", "notFoundSince", "notBefore")} == {
        k: v for k, v in body.items() if v is not None
    }

    data = fake.add(body, wav("synced"))  # the sync landed
    assert handler.lambda_handler(rec_event(aws, [again]), lambda_context) == {"batchItemFailures": []}
    assert read(aws, final_key(body)) == data
    assert len(fake.url_calls) == 2 and job(aws).job_status == "COMPLETED"
    assert emitted(capsys)["RecordingsCopied"] == 1


def test_retry_delays_grow_and_long_ones_are_waited_out_in_hops(aws, fake, handler, lambda_context, monkeypatch):
    start_job(aws, total=1)
    since = datetime.now(UTC) - timedelta(hours=1)
    body = {**FILE_BODIES[0], "notFoundSince": since.isoformat(), "lateRetries": 3, "hop": 3}
    sent: list[tuple[dict[str, Any], int]] = []
    real = exporter_aws.client("sqs")
    monkeypatch.setattr(
        real,
        "send_message",
        lambda QueueUrl, MessageBody, DelaySeconds: sent.append((json.loads(MessageBody), DelaySeconds)),
    )
    fake.url_replies = [NOT_FOUND]
    start = datetime.now(UTC)
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    [(again, delay)] = sent
    retry_at = datetime.fromisoformat(again["notBefore"])
    wanted = timedelta(seconds=recordings.LATE_RETRY_FIRST_SECONDS * 2**3)  # the 4th try: 8 times the first delay
    assert start + wanted <= retry_at <= datetime.now(UTC) + wanted
    assert delay == 900 and (again["hop"], again["lateRetries"]) == (4, 4)  # SQS delays at most 15 min
    assert datetime.fromisoformat(again["notFoundSince"]) == since

    # delivered 15 min later, still before notBefore: sent on again, CC-FS not asked
    calls = len(fake.url_calls)
    assert handler.lambda_handler(rec_event(aws, [again]), lambda_context) == {"batchItemFailures": []}
    [_, (hop, delay)] = sent
    assert len(fake.url_calls) == calls and hop["hop"] == 5 and hop["notBefore"] == again["notBefore"]
    assert 0 < delay <= 900
    assert progress(aws).get_recording(RID, CALL, stem_of(body)) is None


def test_not_found_after_the_grace_period_fails_with_the_reason(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=1)
    since = datetime.now(UTC) - timedelta(hours=24, seconds=1)
    body = {**FILE_BODIES[0], "notFoundSince": since.isoformat(), "lateRetries": 9, "hop": 12}
    fake.url_replies = [NOT_FOUND]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "FAILED"
    assert "not synced to CC-FS within the 24 h grace period (10 tries since" in rec.error
    assert "0300012" in rec.error
    assert job(aws).recordings_failed == 1 and job(aws).job_status == "PARTIAL"
    doc = json.loads(read(aws, f"manifests/{RID}.json"))
    assert doc["failures"] == [{"call_id": CALL, "file_name": body["fileName"], "reason": rec.error}]
    assert emitted(capsys)["RecordingsFailed"] == 1
    assert sent_again(aws) == []
    assert_nothing_left_behind(aws)


def test_grace_period_is_the_stack_parameter(aws, fake, monkeypatch, lambda_context):
    monkeypatch.setenv("RECORDING_GRACE_HOURS", "2")
    handler = download_with(fake, monkeypatch)
    start_job(aws, total=1)
    since = datetime.now(UTC) - timedelta(hours=2, seconds=1)
    body = {**FILE_BODIES[0], "notFoundSince": since.isoformat(), "lateRetries": 4, "hop": 4}
    fake.url_replies = [NOT_FOUND]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and "within the 2 h grace period" in rec.error


# ---------------------------------------------------------------------------- refused URLs


def redirect(request: httpx.Request) -> httpx.Response:
    return httpx.Response(302, headers={"Location": "https://evil.example/steal?x=1"})


@pytest.mark.parametrize(
    ("url", "route", "reason", "allowed_requests"),
    [
        (f"http://{OBS}/rec/c/0903379.wav?Signature=SECRET", None, "must be https", 0),
        ("https://evil.example/rec/c/0903379.wav?Signature=SECRET", None, "host not allowed", 0),
        (f"https://{OBS}.evil.example/rec/c/0903379.wav", None, "host not allowed", 0),
        (f"https://{OBS}/rec/c/0903379.wav?Signature=SECRET", redirect, "redirect refused", 1),
    ],
)
def test_refused_urls_fail_without_fetching_elsewhere(
    aws, fake, handler, lambda_context, capsys, url, route, reason, allowed_requests
):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.url_replies = [[url]]
    if route:
        fake.routes["/rec/c/0903379.wav"] = [route]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert len(fake.requests) == allowed_requests
    assert all(r.url.host == OBS for r in fake.requests)  # never evil.example
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "FAILED" and reason in rec.error
    assert "SECRET" not in rec.error and "SECRET" not in capsys.readouterr().out
    assert job(aws).recordings_failed == 1
    assert_nothing_left_behind(aws)


# ---------------------------------------------------------------------------- broken bodies


def small_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
    monkeypatch.setattr(recordings, "TRANSFER_CONFIG", config)


@pytest.mark.parametrize("case", ["reset", "short", "reset-after-a-part"])
def test_truncated_body_leaves_nothing_behind(aws, fake, handler, lambda_context, monkeypatch, case):
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.add(body, wav("a"))
    path = f"/rec/{CALL}/{stem_of(body)}.wav"
    if case == "reset":
        fake.routes[path] = [
            lambda r: httpx.Response(200, headers={"Content-Length": "9000"}, stream=BrokenStream([b"RIFF" * 500]))
        ]
    elif case == "short":  # the server closes cleanly but early: only the length check notices
        fake.routes[path] = [
            lambda r: httpx.Response(200, headers={"Content-Length": "9000"}, stream=httpx.ByteStream(b"x" * 4000))
        ]
    else:  # a multipart upload had started: the transfer manager must abort it
        small_transfer(monkeypatch)
        chunks = [b"y" * (512 * 1024)] * 12  # 6 MiB, then a reset
        fake.routes[path] = [
            lambda r: httpx.Response(200, headers={"Content-Length": str(8 * MiB)}, stream=BrokenStream(chunks))
        ]
    failed = handler.lambda_handler(rec_event(aws, [body]), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert_nothing_left_behind(aws)
    assert progress(aws).get_recording(RID, CALL, stem_of(body)) is None
    assert job(aws).recordings_done == 0 and job(aws).recordings_failed == 0


def test_last_receive_records_the_failure_then_raises(aws, fake, handler, lambda_context):
    start_job(aws, total=1)
    body = FILE_BODIES[0]
    fake.add(body, wav("a"))
    fake.routes[f"/rec/{CALL}/{stem_of(body)}.wav"] = [lambda r: httpx.Response(503)]
    # reported: SQS retries it, then moves it to the DLQ (alarm)
    failed = handler.lambda_handler(rec_event(aws, [body], receive_count=5), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "FAILED" and "HTTP 503" in rec.error
    assert job(aws).recordings_failed == 1 and job(aws).job_status == "PARTIAL"
    assert json.loads(read(aws, f"manifests/{RID}.json"))["failures"][0]["call_id"] == CALL


# ---------------------------------------------------------------------------- batches


def test_one_failing_record_in_a_batch_is_reported_alone(aws, fake, handler, lambda_context):
    bodies = [body_for("1530497000-201", "0000201"), body_for("1530497000-202", "0000202"), FILE_BODIES[0]]
    start_job(aws, total=3)
    for body in bodies:
        fake.add(body, wav(body["callId"]))
    fake.routes["/rec/1530497000-202/0000202.wav"] = [lambda r: httpx.Response(500)]
    event = rec_event(aws, bodies)
    result = handler.lambda_handler(event, lambda_context)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert objects(aws, "recordings/") == sorted(
        [final_key(bodies[0]), final_key(bodies[0], "json"), final_key(bodies[2]), final_key(bodies[2], "json")]
    )
    assert job(aws).recordings_done == 2


class Crash(BaseException):
    """Lambda dying mid-batch (timeout, out of memory): nothing in the process catches it."""


def test_crash_mid_batch_then_redelivery_duplicates_nothing(aws, fake, handler, lambda_context, monkeypatch):
    bodies = [body_for("1530497000-301", "0000301"), body_for("1530497000-302", "0000302"), FILE_BODIES[0]]
    start_job(aws, total=3)
    for body in bodies:
        fake.add(body, wav(body["callId"]))
    original = Progress.maybe_complete
    calls = {"n": 0}

    def crash_on_second(self: Progress, response_id: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:  # after the 2nd recording was counted, before its message is done
            raise Crash
        return original(self, response_id)

    monkeypatch.setattr(Progress, "maybe_complete", crash_on_second)
    event = rec_event(aws, bodies)
    with pytest.raises(Crash):
        handler.lambda_handler(event, lambda_context)
    assert job(aws).recordings_done == 2

    redelivered = rec_event(aws, bodies, receive_count=2)
    assert handler.lambda_handler(redelivered, lambda_context) == {"batchItemFailures": []}
    final = job(aws)
    assert (final.recordings_done, final.recordings_failed, final.job_status) == (3, 0, "COMPLETED")
    assert len(objects(aws, "recordings/")) == 6  # 3 recordings + 3 sidecars
    # the two copied before the crash are fetched and written again (the one guard is the REC item,
    # written after the copy), and counted once
    assert len(fake.requests) == 5
    doc = json.loads(read(aws, f"manifests/{RID}.json"))
    assert len(doc["recordings"]) == 3


# ---------------------------------------------------------------------------- dead letters


def dead_event(names: Any, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The messages as the RecordingDLQ delivers them (SQS moved them after maxReceiveCount)."""
    event = rec_event(names, bodies, receive_count=6)
    for record in event["Records"]:
        record["eventSourceARN"] = queue_arn(names.recording_dlq_url)
    return event


def test_dead_letter_without_outcome_is_failed_listed_and_completes_the_job(aws, fake, handler, lambda_context, capsys):
    """Every delivery died outside the copier (timeout, out of memory, crash): no REC item, the
    message in the RecordingDLQ. Settling it records FAILED with the reason, completes the job and
    names the recording in the manifest, without fetching anything."""
    start_job(aws, total=2)
    done, dead = FILE_BODIES
    fake.add(done, wav("a"))
    fake.add(dead, wav("b"))
    assert handler.lambda_handler(rec_event(aws, [done]), lambda_context) == {"batchItemFailures": []}
    fetched = len(fake.requests)

    event = dead_event(aws, [dead])
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    assert len(fake.requests) == fetched and len(fake.url_calls) == 1  # decided, not copied
    rec = progress(aws).get_recording(RID, dead["callId"], stem_of(dead))
    assert rec is not None and rec.status == "FAILED"
    assert rec.error.startswith("gave up: SQS moved the message to the RecordingDLQ after 5 deliveries")
    assert event["Records"][0]["messageId"] in rec.error
    final = job(aws)
    assert (final.recordings_done, final.recordings_failed, final.job_status) == (1, 1, "PARTIAL")
    doc = json.loads(read(aws, f"manifests/{RID}.json"))
    assert [f["file_name"] for f in doc["failures"]] == [dead["fileName"]]
    assert [r["file_name"] for r in doc["recordings"]] == [done["fileName"]]
    metrics = emitted(capsys)
    assert metrics["RecordingsFailed"] == 1 and metrics["JobsPartial"] == 1 and "JobsCompleted" not in metrics


def test_dead_letter_of_a_recorded_recording_is_not_a_failure(aws, fake, handler, lambda_context, capsys):
    """A duplicate message (a bill retried after a partial fan-out) ran out of deliveries while its
    twin copied the recording: settling it changes nothing and counts no failure."""
    start_job(aws, total=1)
    body = FILE_BODIES[0]
    fake.add(body, wav("a"))
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    capsys.readouterr()
    assert handler.lambda_handler(dead_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "DONE"
    final = job(aws)
    assert (final.recordings_done, final.recordings_failed, final.job_status) == (1, 0, "COMPLETED")
    assert emitted(capsys).get("RecordingsFailed", 0) == 0


def test_copy_finishing_after_its_dead_letter_was_settled_turns_failed_into_done(aws, fake, handler, lambda_context):
    """A delivery still running when its twin was settled FAILED copies the recording after all:
    the REC item, the counters and the (already completed) job's manifest say DONE."""
    start_job(aws, total=1)
    body = FILE_BODIES[0]
    data = fake.add(body, wav("a"))
    assert handler.lambda_handler(dead_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert job(aws).job_status == "PARTIAL"
    assert len(json.loads(read(aws, f"manifests/{RID}.json"))["failures"]) == 1

    copier = recordings.RecordingCopier(
        ccfs=fake, s3=s3(), progress=progress(aws), bucket=aws.bucket, allowed_hosts=[OBS], http=fake.http
    )
    message = messages.RecordingMessage.model_validate(body)
    original = copier.progress.get_recording
    copier.progress.get_recording = lambda *a: None  # type: ignore[method-assign]  # started before the settle
    try:
        assert copier.process(message)["outcome"] == "copied"
    finally:
        copier.progress.get_recording = original  # type: ignore[method-assign]

    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "DONE" and rec.error is None
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    final = job(aws)
    assert (final.recordings_done, final.recordings_failed, final.job_status) == (1, 0, "COMPLETED")
    doc = json.loads(read(aws, f"manifests/{RID}.json"))
    assert doc["failures"] == [] and [r["key"] for r in doc["recordings"]] == [final_key(body)]
    assert doc["counts"]["recordings_failed"] == 0


# ---------------------------------------------------------------------------- streaming


def test_hashing_reader_reads_in_chunks():
    produced = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            produced.append(i)
            yield bytes([i]) * 1000

    reader = HashingReader(chunks())
    first = reader.read(2500)
    assert len(first) == 2500 and len(produced) == 3  # never more than needed
    rest = reader.read()
    assert len(produced) == 100 and reader.exhausted
    expected = b"".join(bytes([i]) * 1000 for i in range(100))
    assert first + rest == expected
    assert reader.bytes_read == 100_000 and reader.sha256 == hashlib.sha256(expected).hexdigest()
    assert reader.read(10) == b""
    assert not reader.seekable() and reader.readable()


def test_upload_starts_before_the_body_ends(aws, fake, handler, lambda_context, monkeypatch):
    """The body is streamed: S3 receives the first part while the HTTP body is still being read."""
    small_transfer(monkeypatch)
    start_job(aws, total=2)
    body = FILE_BODIES[0]
    fake.add(body, b"unused: the route below serves the body")
    first_part_sent = threading.Event()
    seen: dict[str, int] = {}
    chunk = b"z" * (64 * 1024)

    def slow_body() -> Iterator[bytes]:
        for i in range(100):  # 6.25 MiB in 100 chunks
            if i == 90 and not first_part_sent.wait(timeout=10):
                seen["timeout"] = 1
            yield chunk
        seen["finished"] = 1

    def on_part(**kwargs: Any) -> None:
        seen.setdefault("body_finished_at_first_part", int("finished" in seen))
        first_part_sent.set()

    s3().meta.events.register("before-call.s3.UploadPart", on_part)

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            return slow_body()

    fake.routes[f"/rec/{CALL}/{stem_of(body)}.wav"] = [
        lambda r: httpx.Response(200, headers={"Content-Length": str(100 * len(chunk))}, stream=Body())
    ]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert "timeout" not in seen and seen["body_finished_at_first_part"] == 0
    assert s3().head_object(Bucket=aws.bucket, Key=final_key(body))["ContentLength"] == 100 * len(chunk)
    assert objects(aws, "_staging/") == []


def test_event_file_is_a_valid_recording_batch():
    assert len(EVENT["Records"]) == 2
    for record, ordinal in zip(EVENT["Records"], (1, 2), strict=True):
        body = messages.RecordingMessage.model_validate_json(record["body"])
        assert (body.ordinal, body.count) == (ordinal, 2)
        assert ":aicc-export-RecordingQueue-" in record["eventSourceARN"]
        assert body.keys()[0].startswith("recordings/account_id=acct001/call_date=2018-07-02/1530497000-101/")


# ---------------------------------------------------------------------------- name-free URLs (issue 12)


def uuid_url(n: int) -> str:
    return f"https://{OBS}/ccfs/record/dev/13ddcde6-0000-4000-8000-00000000000{n}?AccessKeyId=AK&Signature=SECRET"


def two_recording_bodies(*, certain: bool = True) -> list[dict[str, Any]]:
    first, second = body_for(CALL, "0903379", 1, 2), body_for(CALL, "0903380", 2, 2)
    for body in (first, second):
        body["ordinalCertain"] = certain
    return [first, second]


def serve_uuid_urls(fake: FakeCcfs, datas: list[bytes]) -> None:
    for n, data in enumerate(datas, start=1):
        path = httpx.URL(uuid_url(n)).path
        fake.routes[path] = [lambda r, d=data: httpx.Response(200, content=d)]


def test_name_free_urls_are_matched_by_the_documented_order(aws, fake, handler, lambda_context, capsys):
    start_job(aws, total=2)
    bodies = two_recording_bodies()
    datas = [wav("first"), wav("second")]
    serve_uuid_urls(fake, datas)
    fake.url_replies = [[uuid_url(1), uuid_url(2)]]
    assert handler.lambda_handler(rec_event(aws, [bodies[1]]), lambda_context) == {"batchItemFailures": []}
    assert read(aws, final_key(bodies[1])) == datas[1]  # the 2nd URL for the 2nd recording
    assert fake.file_calls == [] and "RecordingFallbacks" not in emitted(capsys)


@pytest.mark.parametrize(
    ("urls", "certain", "why"),
    [
        pytest.param([1], True, "1 URLs returned for the call's 2 indexed recordings", id="fewer-urls"),
        pytest.param([1, 2, 3], True, "3 URLs returned for the call's 2 indexed recordings", id="more-urls"),
        pytest.param([1, 2], False, "is not certain", id="same-begin-and-end"),
    ],
)
def test_unmatchable_name_free_urls_fall_back_to_the_file_name(
    aws, fake, handler, lambda_context, capsys, urls, certain, why
):
    start_job(aws, total=2)
    body = two_recording_bodies(certain=certain)[1]
    serve_uuid_urls(fake, [wav(f"other-{n}") for n in urls])  # would be the wrong recording's bytes
    fake.url_replies = [[uuid_url(n) for n in urls]]
    data = fake.files[body["fileName"]] = wav("by-name")
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert fake.file_calls == [body["fileName"]] and fake.requests == []  # no URL was fetched
    assert read(aws, final_key(body)) == data
    assert emitted(capsys)["RecordingFallbacks"] == 1


def test_unmatchable_urls_without_the_file_by_name_fail_with_the_reason(aws, fake, handler, lambda_context):
    start_job(aws, total=2)
    body = two_recording_bodies(certain=False)[0]
    fake.url_replies = [[uuid_url(1), uuid_url(2)]]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    rec = progress(aws).get_recording(RID, CALL, stem_of(body))
    assert rec is not None and rec.status == "FAILED"
    assert "is not certain" in rec.error and "downloadRecordFile found no recording either" in rec.error
    assert objects(aws, "recordings/") == []


def test_a_message_with_an_unusable_response_id_is_consumed_with_the_reason(
    aws, fake, handler, lambda_context, capsys, monkeypatch
):
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(exporter_aws.logger, "error", lambda msg, **kw: logged.append((msg, kw.get("extra", {}))))
    body = {**FILE_BODIES[0], "responseId": "a/b"}
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    [(msg, extra)] = logged
    assert msg == "message refused for good, not retried" and "responseId must be 1-36 letters" in extra["reason"]
    assert emitted(capsys)["RecordingsFailed"] == 1
    assert fake.url_calls == [] and objects(aws) == []


def test_fewer_urls_than_listed_and_none_by_name_is_not_synced_yet(aws, fake, handler, lambda_context, capsys):
    """One of the call's two recordings synced: one URL for two index rows; the other by name is not
    there either. That recording is asked for again later, not failed."""
    start_job(aws, total=2)
    body = two_recording_bodies(certain=False)[0]
    fake.url_replies = [[uuid_url(1)]]
    assert handler.lambda_handler(rec_event(aws, [body]), lambda_context) == {"batchItemFailures": []}
    assert progress(aws).get_recording(RID, CALL, stem_of(body)) is None
    assert emitted(capsys)["RecordingsNotYetSynced"] == 1


def test_a_grace_period_that_outlasts_the_stalled_job_limit_is_refused():
    env = {"CCFS_BASE_URL": "https://10.0.0.1:28443", "CCFS_SECRET_ARN": "arn", "JOBS_TABLE": "t"}
    assert Settings.from_env(env).recording_grace_hours == 24
    with pytest.raises(ConfigError, match=r"STALLED_JOB_HOURS \(30\) must exceed RECORDING_GRACE_HOURS \(29\)"):
        Settings.from_env({**env, "RECORDING_GRACE_HOURS": "29"})
    assert Settings.from_env({**env, "RECORDING_GRACE_HOURS": "29", "STALLED_JOB_HOURS": "31"}).stalled_job_hours == 31
