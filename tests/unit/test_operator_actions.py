"""The operators' domain operations (issue 14) on the in-memory jobs table: request_export refusing a
backfill it can never process, a plain backfill of an exported window (said so), an explicit re-export
(once per token, never over a running export), retrying FAILED recordings, and removing the CDR objects
of the export a re-export replaced. No moto, no handler, no network."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest

from aicc_export.cmd_backfill import one_tenant, plan
from aicc_export.stack_info import StackInfo
from aicc_export.target import TargetError
from exporter.config import Settings
from exporter.jobs.items import RecordingOutcome, WindowItem
from exporter.jobs.keys import JobStatus, job_key, recording_key, window_key
from exporter.jobs.progress import Progress
from exporter.jobs.queries import failed_recordings, windows
from exporter.jobs.reexport import ExportState, WindowReexports, export_state
from exporter.jobs.store import JobStore
from exporter.messages import BackfillMessage, RecordingMessage, message_body
from exporter.operator_actions import retire_replaced_export, retry_failed_recordings
from exporter.requesting import InvalidBackfill, Report, RequestContext, handle_backfill_message
from tests.fakes.ccfs import FakeCcfs
from tests.fakes.jobs_table import FakeJobsTable
from tests.fakes.queues import FakeQueue

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
DAY = "2026-11-20"
WINDOW = f"{DAY} 00:00:00|{DAY} 23:59:59"
BODY = json.dumps({"accountId": "acct001", "beginTime": f"{DAY} 00:00:00", "endTime": f"{DAY} 23:59:59"})


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ccfs_base_url": "https://ccfs.test:28443",
        "ccfs_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ccfs",
        "jobs_table": "jobs",
        "tenant_account_ids": ["acct001", "acct002"],
        "callback_url": "https://api.test/v1/ccfs/callback",
    }
    return Settings.model_validate({**values, **overrides})


class Harness:
    def __init__(self) -> None:
        self.table = FakeJobsTable()
        self.store = JobStore("jobs", jobs_table=self.table)
        self.ccfs = FakeCcfs()
        self.refused: list[tuple[str, str, str]] = []
        self.ctx = RequestContext(
            settings=settings(),
            store=self.store,
            ccfs=lambda tenant: self.ccfs,
            clock=lambda: NOW,
            send_request=FakeQueue().send,
            send_bill=FakeQueue().send,
            refuse_backfill=lambda body, reason, mid: self.refused.append((body, reason, mid)),
            reexports=WindowReexports(self.table),
        )

    def send(self, body: str = BODY, **extra: Any) -> Report:
        report = Report()
        if extra:
            body = json.dumps({**json.loads(body), **extra})
        handle_backfill_message(self.ctx, body, report, message_id="m-1")
        return report

    def window(self) -> dict[str, Any]:
        begin, end = WINDOW.split("|")
        item = self.table.get(window_key("acct001", begin, end))
        assert item is not None
        return item

    def finish_job(self, response_id: str, status: JobStatus = JobStatus.COMPLETED) -> None:
        assert self.table.update(
            job_key(response_id), update="SET job_status = :s", condition="attribute_exists(pk)", values={":s": status}
        )


@pytest.fixture
def h() -> Harness:
    return Harness()


# ---------------------------------------------------------------------------- refusal


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps({"beginTime": f"{DAY} 00:00:00", "endTime": f"{DAY} 23:59:59"}), "accountId: required"),
        (
            json.dumps({"accountId": "nobody", "beginTime": f"{DAY} 00:00:00", "endTime": f"{DAY} 23:59:59"}),
            "configured",
        ),
        ("not json", "body is not JSON"),
    ],
)
def test_an_unprocessable_backfill_is_refused_at_once_with_the_reason(h: Harness, body: str, reason: str) -> None:
    report = h.send(body)  # no exception: the record is consumed, not retried into the DLQ
    assert report.metrics() == {"JobsRequested": 0, "BackfillRefused": 1}
    ((moved, why, message_id),) = h.refused
    assert moved == body and reason in why and message_id == "m-1"
    assert h.ccfs.query_calls == [] and h.table.items == {}


def test_without_a_refusal_queue_an_invalid_backfill_still_fails_its_record(h: Harness) -> None:
    h.ctx.refuse_backfill = None
    with pytest.raises(InvalidBackfill, match="accountId: required"):
        h.send(json.dumps({"beginTime": f"{DAY} 00:00:00", "endTime": f"{DAY} 23:59:59"}))


# ---------------------------------------------------------------------------- exported windows, re-export


def test_a_backfill_of_an_exported_window_is_skipped_and_counted(h: Harness) -> None:
    h.send()
    first = h.window()["response_id"]
    report = h.send()
    assert len(h.ccfs.query_calls) == 1  # the running export is left alone, not counted as exported
    assert report.skipped == 1 and report.already_exported == 0
    h.finish_job(first)
    report = h.send()
    assert len(h.ccfs.query_calls) == 1
    assert report.metrics() == {"JobsRequested": 0, "BackfillWindowsAlreadyExported": 1}


def test_a_reexport_requests_an_exported_window_again_once_per_token(h: Harness) -> None:
    h.send()
    first = h.window()["response_id"]
    busy = h.send(reexport="t1")  # its export is still running: not started
    assert busy.metrics() == {"JobsRequested": 0, "ReexportsNotStarted": 1} and len(h.ccfs.query_calls) == 1
    h.finish_job(first, JobStatus.PARTIAL)
    report = h.send(reexport="t1")
    assert report.metrics() == {"JobsRequested": 1, "WindowsReexported": 1}
    assert len(h.ccfs.query_calls) == 2 and h.ccfs.query_calls[1]["account_id"] == "acct001"
    window = h.window()
    second = window["response_id"]
    assert second != first and window["previous_response_id"] == first and window["reexports"] == 1
    assert window["source"] == "reexport" and "job_status" not in window  # requested: out of the status index
    job = h.store.get_job(second)
    assert job is not None and job.job_status is JobStatus.REQUESTED and job.window_sk == WINDOW
    h.finish_job(second)
    again = h.send(reexport="t1")  # the same message delivered again: nothing
    assert again.metrics() == {"JobsRequested": 0} and len(h.ccfs.query_calls) == 2
    third = h.send(reexport="t2")  # a new re-export: once more
    assert third.reexported == 1 and len(h.ccfs.query_calls) == 3
    assert h.window()["reexports"] == 2 and h.window()["previous_response_id"] == second


def test_a_window_without_data_can_be_reexported(h: Harness) -> None:
    from ccfs.errors import CcfsNotFound

    h.ccfs.query_errors = [CcfsNotFound("queryBillData", "0300012", "no data")]
    assert h.send().no_data == 1
    assert h.window()["no_data"] is True
    report = h.send(reexport="t1")
    assert report.reexported == 1 and report.requested == 1
    window = h.window()
    assert "no_data" not in window and "previous_response_id" not in window and window["response_id"]


def test_export_state_says_which_windows_may_be_reexported() -> None:
    def item(**attrs: Any) -> WindowItem:
        return WindowItem.from_item({"pk": "WINDOW#acct001", "sk": WINDOW, **attrs})

    assert export_state(None, None) is ExportState.GONE
    assert export_state(item(job_status="CLAIMED"), None) is ExportState.IN_PROGRESS
    assert export_state(item(no_data=True), None) is ExportState.EXPORTED
    assert export_state(item(response_id="r1"), None) is ExportState.IN_PROGRESS
    from exporter.jobs.items import Job

    for status, state in [("DOWNLOADING", ExportState.IN_PROGRESS), ("FAILED", ExportState.EXPORTED)]:
        assert export_state(item(response_id="r1"), Job("r1", JobStatus(status))) is state


def test_a_reexport_token_is_part_of_the_backfill_contract() -> None:
    message = BackfillMessage.model_validate_json(BODY.replace("}", ', "reexport": "abc-1"}'))
    assert message.reexport == "abc-1" and json.loads(message_body(message))["reexport"] == "abc-1"
    with pytest.raises(ValueError, match="reexport"):
        BackfillMessage.model_validate_json(BODY.replace("}", ', "reexport": "a b"}'))


# ---------------------------------------------------------------------------- retry-failed


def recording(call_id: str, **extra: Any) -> RecordingMessage:
    return RecordingMessage.model_validate(
        {
            "responseId": "r1",
            "tenant": "acct001",
            "accountId": "acct001",
            "callId": call_id,
            "callBegin": f"{DAY} 10:00:00",
            "callEnd": f"{DAY} 10:05:00",
            "fileName": f"/rec/{call_id}.wav",
            **extra,
        }
    )


def partial_job(table: FakeJobsTable) -> Progress:
    """Job r1 PARTIAL: c1 FAILED (message kept), c2 FAILED before messages were kept, c3 DONE (the
    counters are the REC transactions')."""
    table.items[(job_key("r1")["pk"], "JOB")] = {
        **job_key("r1"),
        "response_id": "r1",
        "tenant": "acct001",
        "job_status": "PARTIAL",
        "recordings_total": 3,
        "recordings_done": 0,
        "recordings_failed": 0,
    }
    progress = Progress(ddb=None, s3=None, table="jobs", bucket="b", clock=lambda: NOW, jobs_table=table)
    late = recording("c1", notFoundSince=NOW - timedelta(hours=30), lateRetries=7, notBefore=NOW, hop=9)
    failed = RecordingOutcome("c1", "c1", late.fileName, "FAILED", error="not synced", message=message_body(late))
    assert progress.record_recording("r1", failed)
    assert progress.record_recording("r1", RecordingOutcome("c2", "c2", "/rec/c2.wav", "FAILED", error="old"))
    assert progress.record_recording("r1", RecordingOutcome("c3", "c3", "/rec/c3.wav", "DONE", key="k", size=1))
    return progress


def test_retry_failed_sends_each_failed_recording_again_once_with_a_fresh_grace_period() -> None:
    table = FakeJobsTable()
    partial_job(table)
    sent = FakeQueue()
    report = retry_failed_recordings(table, sent.send, "r1", NOW)
    assert report.sent == ["c1//rec/c1.wav"] and report.job_status == "PARTIAL" and report.refused is None
    assert report.not_retryable == {
        "c2//rec/c2.wav": "no stored message (failed before retries existed): re-export its window"
    }
    (message,) = sent.sent
    assert isinstance(message, RecordingMessage)
    assert (message.callId, message.notFoundSince, message.lateRetries, message.notBefore) == ("c1", None, 0, None)
    rec = table.get(recording_key("r1", "c1", "c1"))
    assert (
        rec is not None
        and rec["status"] == "FAILED"
        and rec["retries"] == 1
        and rec["retry_at"] == "2026-11-22T03:00:00Z"
    )
    repeat = retry_failed_recordings(table, sent.send, "r1", NOW)  # in flight: not sent twice
    assert repeat.sent == [] and repeat.in_flight == ["c1//rec/c1.wav"] and len(sent.sent) == 1
    listed = {r.call_id: (r.error, r.retry_at) for r in failed_recordings(table, "r1")}
    assert listed == {"c1": ("not synced", "2026-11-22T03:00:00Z"), "c2": ("old", None)}


def test_a_retry_that_fails_again_keeps_the_recording_failed_with_the_new_reason() -> None:
    table = FakeJobsTable()
    progress = partial_job(table)
    retry_failed_recordings(table, FakeQueue().send, "r1", NOW)
    outcome = RecordingOutcome("c1", "c1", "/rec/c1.wav", "FAILED", error="still not synced")
    assert not progress.record_recording("r1", outcome)  # counted once, as before
    assert progress.fail_again("r1", outcome)
    rec = table.get(recording_key("r1", "c1", "c1"))
    assert rec is not None and rec["error"] == "still not synced" and "retry_at" not in rec
    assert not progress.fail_again("r1", outcome)  # not in flight any more: nothing to change
    job = progress.get_job("r1")
    assert job is not None and (job.recordings_failed, job.recordings_done) == (2, 1)


def test_retry_failed_refuses_a_job_that_cannot_complete_again() -> None:
    table = FakeJobsTable()
    partial_job(table)
    assert table.update(
        job_key("r1"), update="SET job_status = :f", condition="attribute_exists(pk)", values={":f": "FAILED"}
    )
    sent = FakeQueue()
    report = retry_failed_recordings(table, sent.send, "r1", NOW)
    assert report.refused is not None and "job is FAILED" in report.refused and sent.sent == []
    assert retry_failed_recordings(table, sent.send, "nope", NOW).refused == "no such job"


# ---------------------------------------------------------------------------- the replaced export's CDR objects


class S3Stub:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.deleted: list[list[str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> None:
        keys = [o["Key"] for o in Delete["Objects"]]
        self.deleted.append(keys)
        for key in keys:
            self.objects.pop(key, None)


def test_the_replaced_exports_cdr_objects_and_manifest_are_removed_once(h: Harness) -> None:
    h.send()
    old = h.window()["response_id"]
    h.finish_job(old)
    h.send(reexport="t1")
    new = h.window()["response_id"]
    cdr = f"cdr/account_id=acct001/call_date={DAY}/{old}-1.csv"
    index = f"recording_index/account_id=acct001/call_date={DAY}/{old}-1.csv"
    manifest = {"cdr": [{"key": cdr, "rows": 3}], "recording_index": [{"key": index, "rows": 1}], "recordings": []}
    kept = f"cdr/account_id=acct001/call_date={DAY}/{new}-1.csv"
    s3 = S3Stub({f"manifests/{old}.json": json.dumps(manifest).encode(), cdr: b"x", index: b"x", kept: b"x"})
    removed = retire_replaced_export(h.table, s3, "b", new, NOW)
    assert removed == [cdr, index, f"manifests/{old}.json"]
    assert set(s3.objects) == {kept}
    old_job = h.table.get(job_key(old))
    assert old_job is not None and old_job["replaced_by"] == new
    assert retire_replaced_export(h.table, s3, "b", new, NOW) == [] and len(s3.deleted) == 1  # once
    assert retire_replaced_export(h.table, s3, "b", old, NOW) == []  # not the window's job any more


def test_a_first_export_removes_nothing(h: Harness) -> None:
    h.send()
    s3 = S3Stub({})
    assert retire_replaced_export(h.table, s3, "b", h.window()["response_id"], NOW) == [] and s3.deleted == []


# ---------------------------------------------------------------------------- queries and the CLI's planning


def test_windows_newest_first_or_from_a_begin(h: Harness) -> None:
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
        body = json.dumps({"accountId": "acct001", "beginTime": f"{day} 00:00:00", "endTime": f"{day} 23:59:59"})
        h.send(body)
    assert [v.sk[:10] for v in windows(h.table, "acct001")] == ["2026-11-20", "2026-11-19", "2026-11-18"]
    later = windows(h.table, "acct001", newest_first=False, begin_from="2026-11-19 00:00:00", limit=1)
    assert [v.sk[:10] for v in later] == ["2026-11-19"]
    assert list(windows(h.table, "acct002")) == []


def info(*tenants: str) -> StackInfo:
    return StackInfo(
        list(tenants), {t: ZoneInfo("Asia/Shanghai") for t in tenants}, settle_minutes=30, window_minutes=60
    )


def test_backfill_plans_the_planners_three_day_windows_and_refuses_a_day_not_over() -> None:
    stack = info("acct001", "acct002")
    windows_ = plan(stack, "acct001", date(2026, 11, 1), date(2026, 11, 7), NOW)
    assert [w.sk for w in windows_] == [
        "2026-11-01 00:00:00|2026-11-03 23:59:59",
        "2026-11-04 00:00:00|2026-11-06 23:59:59",
        "2026-11-07 00:00:00|2026-11-07 23:59:59",
    ]
    # 03:00 UTC is 11:00 in Shanghai: the 22nd is not over
    with pytest.raises(click.BadParameter, match="2026-11-22 is not over yet in Asia/Shanghai"):
        plan(stack, "acct001", date(2026, 11, 21), date(2026, 11, 22), NOW)
    with pytest.raises(click.BadParameter, match="is before FROM"):
        plan(stack, "acct001", date(2026, 11, 7), date(2026, 11, 1), NOW)
    with pytest.raises(click.UsageError, match="exports 2 tenants"):
        one_tenant(stack, None)
    with pytest.raises(TargetError, match="not one of this stack's tenants"):
        one_tenant(stack, "acct009")
    assert one_tenant(info("_all"), None) == "_all" and info("_all").account_id("_all") is None


def test_the_copier_keeps_a_failed_recordings_message_and_the_reason_of_a_failed_retry() -> None:
    from exporter.recordings import RecordingOutcomes
    from exporter.tally import Tally

    table = FakeJobsTable()
    partial_job(table)
    progress = Progress(ddb=None, s3=None, table="jobs", bucket="b", clock=lambda: NOW, jobs_table=table)
    tally = Tally()
    message = recording("c4")
    RecordingOutcomes(progress, tally).failed(message, "downloadRecordFile refused the request")
    rec = table.get(recording_key("r1", "c4", "c4"))
    assert rec is not None and RecordingMessage.model_validate_json(rec["message"]) == message
    retry_failed_recordings(table, FakeQueue().send, "r1", NOW)
    RecordingOutcomes(progress, tally).failed(message, "refused again")
    rec = table.get(recording_key("r1", "c4", "c4"))
    assert rec is not None and rec["error"] == "refused again" and "retry_at" not in rec and rec["retries"] == 1
    assert [p.name for p in tally.take()].count("RecordingsFailed") == 1  # the retry's failure is not counted twice


def test_status_leaves_out_an_export_a_reexport_replaced_and_shows_the_reexport_in_flight(h: Harness) -> None:
    from aicc_export.cmd_status import tenant_states

    h.send()
    old = h.window()["response_id"]
    h.finish_job(old, JobStatus.PARTIAL)
    assert h.table.update(
        job_key(old), update="SET recordings_failed = :n", condition="attribute_exists(pk)", values={":n": 2}
    )
    before = tenant_states(h.table, NOW - timedelta(days=7))["acct001"]
    assert before.jobs == {"PARTIAL": 1} and [j.response_id for j in before.with_failures] == [old]
    assert before.reexports == [] and before.problems == []
    h.send(reexport="t1")
    new = h.window()["response_id"]
    after = tenant_states(h.table, NOW - timedelta(days=7))["acct001"]
    assert after.jobs == {"REQUESTED": 1} and after.with_failures == []  # the replaced PARTIAL job is not a gap
    assert after.reexports == [{"window": WINDOW, "since": "2026-11-22T03:00:00Z", "state": "REQUESTED"}]
    h.finish_job(new, JobStatus.FAILED)
    failed = tenant_states(h.table, NOW - timedelta(days=7))["acct001"]
    assert failed.problems == [{"window": WINDOW, "status": "job FAILED", "responseId": new, "error": None}]
