"""`aicc-export canary` on moto: the backfill it sends, the hops it follows (a fake pipeline advances
the jobs table between polls, on a fake clock) and where it says a run stalled."""

from __future__ import annotations

import json
from datetime import date

import boto3
from click.testing import CliRunner

from aicc_export.cmd_canary import run_canary
from aicc_export.main import cli
from exporter.jobs.keys import window_key
from tests.conftest import sqs_messages
from tests.unit.cli_check_helpers import cli_target, put_job, put_window

DAY = date(2026, 11, 20)
BEGIN, END = "2026-11-20 10:00:00", "2026-11-20 10:09:59"


class Pipeline:
    """Plays the functions: one step of a job's life per poll, on a clock that moves 1.5 s a poll."""

    def __init__(self, names, steps: int, no_data: bool = False) -> None:
        self.names, self.steps, self.no_data = names, steps, no_data
        self.t = 0.0
        self.polls = 0

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += 1.5
        self.polls += 1
        table, step = self.names.jobs_table, self.polls
        if step > self.steps:
            return
        if self.no_data:
            put_window(table, "acct001", BEGIN, END, no_data=True)
            return
        job = {"job_status": "REQUESTED", "requested_at": "2026-12-06T10:00:00Z"}
        if step >= 2:
            job.update(callback_at="2026-12-06T10:00:05Z", bill_file_name="20261120_rid1.zip")
        if step >= 3:
            job.update(job_status="DOWNLOADING", bill_processed_at="x", cdr_rows=7, recordings_total=2)
        if step >= 4:
            job.update(recordings_done=1, recordings_failed=1)
        if step >= 5:
            job.update(job_status="PARTIAL", completed_at="2026-12-06T10:01:00Z")
            boto3.client("s3").put_object(Bucket=self.names.bucket, Key="manifests/rid1.json", Body=b"{}")
        put_window(table, "acct001", BEGIN, END, job_status=job["job_status"], response_id="rid1")
        put_job(table, "rid1", **job)


def test_canary_sends_one_backfill_and_times_every_hop(aws):
    target = cli_target(aws)
    pipeline = Pipeline(aws, steps=5)
    result = run_canary(target, None, DAY, 60, clock=pipeline.clock, sleep=pipeline.sleep)
    assert result.ok, result.checks
    sent = [json.loads(m["Body"]) for m in sqs_messages(aws.request_queue_url)]
    assert sent == [{"accountId": "acct001", "beginTime": BEGIN, "endTime": END}]
    assert [c.name for c in result.checks] == ["requested", "callback", "bill", "recordings", "manifest"]
    assert result.data["hops"] == {"requested": 1.5, "callback": 3.0, "bill": 4.5, "recordings": 6.0, "manifest": 7.5}
    assert result.checks[3].detail == "+1.5 s (at 6.0 s): 1 copied, 1 failed"
    assert "PARTIAL" in result.checks[4].detail


def test_canary_says_where_it_stalled_and_what_to_look_at(aws):
    pipeline = Pipeline(aws, steps=2)  # requested and called back; the bill step never finishes
    result = run_canary(cli_target(aws), "acct001", DAY, 10, clock=pipeline.clock, sleep=pipeline.sleep)
    assert not result.ok
    assert [(c.name, c.ok) for c in result.checks] == [("requested", True), ("callback", True), ("bill", False)]
    assert result.checks[-1].detail == "stalled here: not reached within 10 s"
    assert "BillQueue" in result.checks[-1].fix
    assert result.data["stalled_at"] == "bill" and result.data["response_id"] == "rid1"


def test_canary_takes_the_next_free_slice_and_reports_a_window_without_data(aws):
    put_window(aws.jobs_table, "acct001", BEGIN, END, job_status="COMPLETED", response_id="old")
    pipeline = Pipeline(aws, steps=0)
    result = run_canary(cli_target(aws), None, DAY, 3, clock=pipeline.clock, sleep=pipeline.sleep)
    sent = [json.loads(m["Body"]) for m in sqs_messages(aws.request_queue_url)]
    assert sent == [{"accountId": "acct001", "beginTime": "2026-11-20 10:10:00", "endTime": "2026-11-20 10:19:59"}]
    assert result.data["stalled_at"] == "requested" and not result.ok

    boto3.resource("dynamodb").Table(aws.jobs_table).delete_item(Key=window_key("acct001", BEGIN, END))
    pipeline = Pipeline(aws, steps=1, no_data=True)
    result = run_canary(cli_target(aws), None, DAY, 30, clock=pipeline.clock, sleep=pipeline.sleep)
    assert [(c.name, c.ok) for c in result.checks] == [("requested", True), ("callback", False)]
    assert "no calls in this window" in result.checks[-1].detail and "--start" in result.checks[-1].fix


def test_canary_refuses_a_tenant_the_stack_does_not_export(aws, monkeypatch):
    import aicc_export.main as main

    target = cli_target(aws)
    monkeypatch.setattr(main.Target, "from_local", classmethod(lambda cls, source: target))
    out = CliRunner().invoke(cli, ["--local", "x", "canary", "--tenant", "acct999"], obj={})
    assert out.exit_code == 2 and "'acct999' is not a tenant of this stack (configured: acct001)" in out.output
    assert sqs_messages(aws.request_queue_url) == []
    out = CliRunner().invoke(cli, ["--local", "x", "canary", "--start", "25:00"], obj={})
    assert out.exit_code == 2 and "'25:00' is not HH:MM" in out.output
