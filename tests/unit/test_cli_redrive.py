"""`aicc-export redrive` on moto: move tasks where SQS has them (a stand-in that implements the two
calls), receive/send/delete where it has not (moto), failed planning ticks replayed as backfills."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import click
import pytest

from aicc_export.cmd_redrive import run_redrive, tick_backfills, tick_time
from exporter.config import Settings
from exporter.messages import BackfillMessage, message_body
from tests.conftest import AwsNames, app_env, sqs_messages
from tests.unit.cli_check_helpers import cli_target


def _depth(url: str) -> int:
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_a_dlq_goes_back_to_its_source_by_hand_where_move_tasks_are_unavailable(aws):
    sqs = boto3.client("sqs")
    for n in range(13):
        sqs.send_message(
            QueueUrl=aws.recording_dlq_url,
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": f"r{n}"}},
        )
    result = run_redrive(cli_target(aws), "RecordingDLQ")
    assert result.ok, result.checks
    assert result.data["RecordingDLQ"] == {"method": "receive-send-delete", "moved": 13, "failed": 0}
    assert _depth(aws.recording_dlq_url) == 0
    back = boto3.client("sqs").receive_message  # attributes travel with the body
    moved = []
    for _ in range(5):
        batch = back(QueueUrl=aws.recording_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        for m in batch.get("Messages", []):
            moved.append((json.loads(m["Body"])["n"], m["MessageAttributes"]["reason"]["StringValue"]))
            sqs.delete_message(QueueUrl=aws.recording_queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(moved) == [(n, f"r{n}") for n in range(13)]


class MoveTasks:
    """An SQS client that has message move tasks (moto has none): the task moves everything at once."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs")
        self.tasks: list[dict] = []

    def __getattr__(self, name: str):
        return getattr(self.sqs, name)

    def _url(self, arn: str) -> str:
        return self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]

    def start_message_move_task(self, SourceArn: str, DestinationArn: str) -> dict:
        moved = sqs_messages(self._url(SourceArn))
        for m in moved:
            self.sqs.send_message(QueueUrl=self._url(DestinationArn), MessageBody=m["Body"])
        self.tasks.append({"SourceArn": SourceArn, "DestinationArn": DestinationArn, "moved": len(moved)})
        return {"TaskHandle": "t1"}

    def list_message_move_tasks(self, SourceArn: str, MaxResults: int) -> dict:
        task = self.tasks[-1]
        return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": task["moved"]}]}


def test_a_dlq_goes_back_with_a_message_move_task_where_sqs_has_them(aws, monkeypatch):
    boto3.client("sqs").send_message(QueueUrl=aws.bill_dlq_url, MessageBody="{}")
    target = cli_target(aws)
    fake = MoveTasks()
    monkeypatch.setattr(target, "client", lambda service: fake if service == "sqs" else boto3.client(service))
    result = run_redrive(target, "BillDLQ")
    assert result.ok and result.data["BillDLQ"] == {"method": "move-task", "status": "COMPLETED", "moved": 1}
    assert fake.tasks[0]["SourceArn"].endswith(":aicc-bill-dlq") and fake.tasks[0]["DestinationArn"].endswith(
        ":aicc-bill"
    )
    assert [m["Body"] for m in sqs_messages(aws.bill_queue_url)] == ["{}"]


def test_every_dlq_when_none_is_named_and_an_empty_one_passes(aws):
    result = run_redrive(cli_target(aws), None)
    assert result.ok
    assert [(c.name, c.detail) for c in result.checks] == [
        ("RequestDLQ", "empty"),
        ("BillDLQ", "empty"),
        ("RecordingDLQ", "empty"),
        ("ScheduleDLQ", "empty"),
    ]


SETTINGS = Settings.from_env(app_env(AwsNames(secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:x")))
AT_2Z = datetime(2026, 11, 20, 2, tzinfo=UTC)
DESTINATION = {
    "requestContext": {},
    "timestamp": "2026-11-20T02:00:00.000Z",
    "requestPayload": {"source": "aws.scheduler"},
}
RULE_EVENT = {"source": "aws.events", "time": "2026-11-20T02:00:00Z"}


@pytest.mark.parametrize(
    ("body", "sent", "expected"),
    [
        ('{"source": "aws.scheduler"}', "1795140000000", AT_2Z),  # EventBridge Scheduler's DLQ: the target input
        (json.dumps(DESTINATION), None, AT_2Z),  # Lambda's OnFailure destination record
        (json.dumps({**DESTINATION, "timestamp": "x", "requestPayload": RULE_EVENT}), None, AT_2Z),
        ('{"accountId": "acct001"}', "1795140000000", None),
        ("not json", "1795140000000", None),
    ],
)
def test_tick_time_reads_each_shape_a_failed_tick_arrives_in(body, sent, expected):
    assert tick_time(body, sent) == expected


def test_a_failed_tick_stands_for_the_grid_window_before_its_settled_time():
    # 02:00Z is 10:00 in Asia/Shanghai; settled 30 min earlier, 09:30; the last whole 60-minute window: 08:00-08:59:59
    (backfill,) = tick_backfills(SETTINGS, datetime(2026, 11, 20, 2, tzinfo=UTC))
    sent = BackfillMessage.model_validate_json(message_body(backfill))  # as request_export reads it
    assert (sent.accountId, sent.beginTime, sent.endTime, sent.dataType, sent.reexport) == (
        "acct001",
        "2026-11-20 08:00:00",
        "2026-11-20 08:59:59",
        "call_record",
        None,  # a replayed tick is a plain backfill, never a re-export
    )


def test_schedule_dlq_is_replayed_as_backfills_and_a_stranger_is_left_loudly(aws):
    target = cli_target(aws)
    sqs = boto3.client("sqs")
    dlq = target.queues["ScheduleDLQ"]
    record = {"requestContext": {}, "timestamp": "2026-11-20T02:00:00Z", "requestPayload": {"source": "aws.scheduler"}}
    for _ in range(2):  # the same tick twice (a retry): one backfill
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(record))
    sqs.send_message(QueueUrl=dlq, MessageBody='{"what": "else"}')
    result = run_redrive(target, "ScheduleDLQ")
    assert not result.ok
    (check,) = result.checks
    assert check.detail.startswith("2 failed tick(s) replayed as 1 backfill(s) on RequestQueue; 1 message(s) are no")
    sent = [json.loads(m["Body"]) for m in sqs_messages(aws.request_queue_url)]
    assert sent == [{"accountId": "acct001", "beginTime": "2026-11-20 08:00:00", "endTime": "2026-11-20 08:59:59"}]
    left = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # kept, not deleted


def test_a_failed_tick_is_replayed_on_each_tenants_own_wall_clock(aws):
    secret = {"ak": "shared-ak", "sk": "s0", "tenants": {"acct002": {"ak": "a2", "sk": "s2", "timezone": "Asia/Tokyo"}}}
    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString=json.dumps(secret))
    target = cli_target(aws, TENANT_ACCOUNT_IDS="acct001,acct002")
    record = {"requestContext": {}, "timestamp": "2026-11-20T02:00:00Z", "requestPayload": {"source": "aws.scheduler"}}
    boto3.client("sqs").send_message(QueueUrl=target.queues["ScheduleDLQ"], MessageBody=json.dumps(record))
    assert run_redrive(target, "ScheduleDLQ").ok
    sent = sorted(
        (m["accountId"], m["beginTime"])
        for m in map(json.loads, (m["Body"] for m in sqs_messages(aws.request_queue_url)))
    )
    # 02:00Z is 10:00 in Shanghai (TENANT_TIMEZONE) and 11:00 in Tokyo (acct002's own zone)
    assert sent == [("acct001", "2026-11-20 08:00:00"), ("acct002", "2026-11-20 09:00:00")]


def test_schedule_dlq_is_left_alone_when_the_tenants_zones_cannot_be_read(aws):
    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString="{}")
    target = cli_target(aws)
    boto3.client("sqs").send_message(QueueUrl=target.queues["ScheduleDLQ"], MessageBody='{"source": "aws.scheduler"}')
    with pytest.raises(click.ClickException, match="time zones"):
        run_redrive(target, "ScheduleDLQ")
    assert sqs_messages(aws.request_queue_url) == [] and len(sqs_messages(target.queues["ScheduleDLQ"])) == 1
