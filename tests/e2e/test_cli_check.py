"""End to end: the operators' read-and-recover commands (`doctor`, `canary`, `find`, `verify`,
`redrive`) against ONE local stack (1 tenant, a few calls), through the CLI's `--local` target built
from the JSON line `make serve` prints (written to `{run dir}/serve.json` by `_serve_info`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aicc_export.main import cli
from exporter.jobs.keys import window_key
from exporter.messages import BackfillMessage
from local.stack import LocalStack, StackConfig
from local.stack.__main__ import _serve_info
from local.stack.processes.procs import ROOT
from tests.e2e.conftest import BATCHING_WINDOW, module_stack, needs_handlers, wait_until

pytestmark = [pytest.mark.e2e, needs_handlers]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with module_stack(StackConfig(tenants=1, calls=24, schedule=False, max_batching_window=BATCHING_WINDOW)) as started:
        yield started


@pytest.fixture(scope="module")
def info(stack: LocalStack) -> dict[str, Any]:
    line = _serve_info(stack)
    # The stack's alarm topic comes without subscriptions (no mail leaves it), as a fresh deploy whose
    # e-mail nobody confirmed: subscribe a queue, as an operator would, so doctor's line can pass.
    sns, sqs = stack.client("sns"), stack.client("sqs")
    assert (
        line["alarm_topic_arn"]
        and sns.list_subscriptions_by_topic(TopicArn=line["alarm_topic_arn"])["Subscriptions"] == []
    )
    url = sqs.create_queue(QueueName="operator-alarms")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=line["alarm_topic_arn"], Protocol="sqs", Endpoint=arn)
    return line


def run(info: dict[str, Any], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--local", info["info_file"], *args], obj={}, catch_exceptions=False)
    return result.exit_code, result.output


def run_json(info: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    code, out = run(info, "--json", *args)
    return code, json.loads(out)


def test_the_printed_aicc_export_lines_work_as_printed(info):
    lines = info["aicc_export"]
    assert Path(info["info_file"]).is_file() and json.loads(Path(info["info_file"]).read_text()) == info
    doctor = next(line for line in lines if line.endswith(" doctor") and "--json" not in line)
    argv = shlex.split(doctor)
    assert argv[:3] == ["aicc-export", "--local", info["info_file"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("cli", "layers/shared"))}
    done = subprocess.run(
        [sys.executable, "-m", "aicc_export", *argv[1:]], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[PASS] signed request accepted (acct001)" in done.stdout
    for line in lines:  # every other printed line names a command the CLI has, with options it takes
        words = shlex.split(line)
        assert words[0] == "aicc-export"
        cli.make_context("aicc-export", words[1:], obj={}, resilient_parsing=True)


def test_the_printed_shell_lines_are_complete(stack, info):
    """`callback_curl` runs as printed (curl is everywhere): the unsigned probe gets 401. The `aws` lines
    (AWS CLI is no dev dependency) carry everything they need: credentials, region, --endpoint-url
    (AWS CLI v1 ignores AWS_ENDPOINT_URL), the stack's own bucket/queue, a body the function accepts."""
    done = subprocess.run(
        ["bash", "-c", info["callback_curl"] + " -s -o /dev/null -w '%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "401"), done.stderr
    for line, what in (
        (info["aws_cli"], ["s3", "ls", f"s3://{stack.names.bucket}", "--recursive"]),
        (
            info["backfill_example"],
            ["sqs", "send-message", "--queue-url", stack.names.request_queue_url, "--message-body"],
        ),
    ):
        words = shlex.split(line)
        env = dict(w.split("=", 1) for w in words[:3])
        assert env == {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        assert words[3:5] == ["aws", "--endpoint-url"] and words[5] == stack.endpoint_url
        assert words[6 : 6 + len(what)] == what
    body = shlex.split(info["backfill_example"])[-1]
    BackfillMessage.model_validate_json(body)


def test_doctor_passes_against_the_simulator_and_explains_an_unknown_ca(stack, info, tmp_path):
    code, out = run(info, "doctor")
    assert code == 0, out
    for name in ("secret readable", "secret: tenant acct001", "KMS key", "CC-FS reachable (TLS)"):
        assert f"[PASS] {name}" in out
    assert "[PASS] callback URL answers 401 unsigned: HTTP 401" in out
    assert "[PASS] schedule: PlanningSchedule DISABLED" in out
    code, doc = run_json(info, "doctor")
    assert code == 0 and doc["ok"] is True and doc["command"] == "doctor"
    assert {c["name"] for c in doc["checks"]} >= {"region", "signed request accepted (acct001)"}
    assert "[PASS] alarm topic has a confirmed subscription: 1 confirmed (sqs)" in out

    # a topic nobody subscribed to: alarms would go nowhere
    orphan = stack.client("sns").create_topic(Name="nobody-listens")["TopicArn"]
    path = tmp_path / "orphan.json"
    path.write_text(json.dumps({**info, "alarm_topic_arn": orphan}))
    code, out = run({"info_file": str(path)}, "doctor")
    assert code == 1
    assert "[FAIL] alarm topic has a confirmed subscription: 0 confirmed (none)" in out
    assert "-> subscribe (aws sns subscribe" in out

    # the same stack, its CC-FS CA parameter holding the object store's CA instead: unknown CA
    ssm = stack.client("ssm")
    ssm.put_parameter(
        Name="/cli-check/wrong-ca", Value=Path(info["simulator"]["obs_ca_bundle"]).read_text(), Type="String"
    )
    wrong = json.loads(json.dumps(info))
    wrong["function_env"]["RequestExportFunction"]["CCFS_CA_BUNDLE_PARAM"] = "/cli-check/wrong-ca"
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(wrong))
    code, out = run({"info_file": str(path)}, "doctor")
    assert code == 1
    assert "[FAIL] CC-FS reachable (TLS): ccfs.sim.internal:28443: unknown CA" in out
    assert "-> put CC-FS's" in out and "CcfsCaBundleParameter" in out
    assert "signed request accepted" not in out  # not attempted over an untrusted connection


def test_canary_follows_one_window_through_every_hop(stack, info):
    day = stack.base_date
    code, doc = run_json(
        info,
        "canary",
        "--date",
        str(day),
        "--start",
        "09:00",
        "--minutes",
        "180",
        "--timeout",
        "60",
        "--interval",
        "0.3",
    )
    assert code == 0, doc
    assert [c["name"] for c in doc["checks"]] == ["requested", "callback", "bill", "recordings", "manifest"]
    hops = doc["data"]["hops"]
    assert all(hops[h] is not None for h in hops) and hops["manifest"] >= hops["callback"] >= hops["requested"]
    assert doc["data"]["window"] == {"begin": f"{day} 09:00:00", "end": f"{day} 11:59:59"}
    assert doc["data"]["stalled_at"] is None
    # the next canary takes the next slice: a repeat is a fresh request, not a silently skipped backfill
    code, out = run(info, "canary", "--date", str(day), "--start", "09:00", "--minutes", "180", "--timeout", "60")
    assert code == 0, out
    assert f"canary window {day} 12:00:00 .. {day} 14:59:59" in out
    assert "[PASS] manifest: +" in out


@pytest.fixture(scope="module")
def exported(stack: LocalStack) -> str:
    """The whole base day exported; the day's date."""
    day = stack.base_date
    stack.send_backfill({"accountId": "acct001", "beginTime": f"{day} 00:00:00", "endTime": f"{day} 23:59:59"})
    assert stack.run_until_complete(60).complete
    return str(day)


def _recordings(stack: LocalStack) -> list[str]:
    s3 = stack.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.names.bucket, Prefix="recordings/")["Contents"]]
    return sorted(k for k in keys if k.endswith(".wav"))


def test_find_locates_a_calls_rows_and_recordings_from_its_id(stack, info, exported):
    key = _recordings(stack)[0]
    call_id = key.split("/")[3]
    body = stack.client("s3").get_object(Bucket=stack.names.bucket, Key=key)["Body"].read()
    code, doc = run_json(info, "find", call_id)  # no --date: the id's epoch names the days to look at
    assert code == 0, doc
    places = doc["data"]["places"]
    assert [p["call_date"] for p in places] == [exported]
    recs = [r for p in places for r in p["recordings"]]
    assert key in {r["key"] for r in recs}
    rec = next(r for r in recs if r["key"] == key)
    assert rec["size"] == len(body) and rec["sha256"] == hashlib.sha256(body).hexdigest()
    assert rec["rec_item"]["status"] == "DONE"
    assert places[0]["cdr"] and all(r["row"]["call_id"] == call_id for r in places[0]["cdr"])
    code, out = run(info, "find", call_id, "--date", exported)
    assert code == 0 and key in out and "DONE" in out and "CDR cdr/account_id=acct001/" in out
    code, out = run(info, "find", "1600000000-99999")
    assert code == 1 and "[FAIL] call 1600000000-99999: not found on 2020-09-12, 2020-09-13, 2020-09-14" in out


def test_verify_passes_then_lists_a_deleted_and_an_altered_recording(stack, info, exported):
    code, out = run(info, "verify", "--date", exported)
    assert code == 0, out
    assert f"[PASS] acct001 {exported}:" in out and "0 gap(s)" in out
    s3, bucket = stack.client("s3"), stack.names.bucket
    deleted, altered = _recordings(stack)[:2]
    s3.delete_object(Bucket=bucket, Key=deleted)
    head = s3.head_object(Bucket=bucket, Key=altered)
    body = s3.get_object(Bucket=bucket, Key=altered)["Body"].read()
    changed = bytes([body[0] ^ 0xFF]) + body[1:]  # same size, same metadata: only the bytes differ
    s3.put_object(Bucket=bucket, Key=altered, Body=changed, Metadata=head["Metadata"], ChecksumAlgorithm="SHA256")
    code, doc = run_json(info, "verify", "--date", exported)
    assert code == 1 and doc["ok"] is False
    problems = {(g["key"], g["problem"]) for g in doc["data"]["gaps"]}
    assert (deleted, "recording missing") in problems
    assert (altered, "S3 SHA-256 checksum differs from the manifest's sha256") in problems
    assert len(problems) == 2
    code, out = run(info, "verify", "--date", exported)
    assert code == 1 and "GAP acct001 job" in out and deleted in out and "2 gap(s)" in out


def test_redrive_moves_a_dlq_back_and_replays_a_failed_tick_as_a_backfill(stack, info, exported):
    sqs, queues = stack.client("sqs"), stack.names.queues
    day = stack.base_date
    # a backfill that ended in RequestDLQ (forced: sent there), and a failed planning tick as Lambda's
    # OnFailure destination delivers it to ScheduleDLQ
    sqs.send_message(
        QueueUrl=queues["RequestDLQ"],
        MessageBody=json.dumps({"accountId": "acct001", "beginTime": f"{day} 20:00:00", "endTime": f"{day} 20:29:59"}),
    )
    settle = int(stack.function_env("RequestExportFunction").get("SETTLE_MINUTES", "30"))
    window_minutes = int(stack.function_env("RequestExportFunction").get("WINDOW_MINUTES", "60"))
    local_tick = datetime.combine(day, datetime.min.time()) + timedelta(hours=18, minutes=settle + 5)
    tick = local_tick.replace(tzinfo=stack.zone_of("acct001"))
    record = {
        "version": "1.0",
        "timestamp": tick.astimezone().isoformat(),
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 1},
        "requestPayload": {"source": "aws.scheduler"},
        "responsePayload": {"errorMessage": "boom"},
    }
    sqs.send_message(QueueUrl=queues["ScheduleDLQ"], MessageBody=json.dumps(record))
    code, doc = run_json(info, "redrive")
    assert code == 0, doc
    assert doc["data"]["RequestDLQ"] == {"method": "receive-send-delete", "moved": 1, "failed": 0}
    begin = datetime.combine(day, datetime.min.time()) + timedelta(hours=18) - timedelta(minutes=window_minutes)
    expected = {
        "accountId": "acct001",
        "beginTime": begin.strftime("%Y-%m-%d %H:%M:%S"),
        "endTime": f"{day} 17:59:59",
    }
    assert doc["data"]["ScheduleDLQ"]["backfills"] == [expected]
    windows = [
        window_key("acct001", f"{day} 20:00:00", f"{day} 20:29:59"),
        window_key("acct001", expected["beginTime"], expected["endTime"]),
    ]

    def requested() -> bool:
        items = {(i["pk"], i["sk"]): i for i in stack.scan_jobs_table()}
        return all(items.get((w["pk"], w["sk"]), {}).get("response_id") for w in windows)

    assert wait_until(requested, 30, 0.3), "the redriven backfill and the replayed tick were not requested"
    assert all(
        int(
            sqs.get_queue_attributes(QueueUrl=queues[q], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        == 0
        for q in ("RequestDLQ", "ScheduleDLQ")
    )
    code, out = run(info, "redrive", "RequestDLQ")
    assert code == 0 and "[PASS] RequestDLQ: empty" in out
