"""The in-memory queues (``tests/fakes/queues.py``) answer as what they stand in for: ``FakeQueue.send``
takes what ``QueueSender.send`` takes, and ``FakeSqs`` keeps and refuses what SQS (moto) does."""

from __future__ import annotations

import inspect
from typing import Any

import boto3
import pytest

from exporter.bill_fanout import send_batches
from exporter.messages import BillMessage
from exporter.queues import QueueSender
from tests.fakes.queues import FakeQueue, FakeSqs

RID = "9239cb50a8384bb0ab503441bf089446"
BILL = BillMessage(responseId=RID, billFileName=f"20180702_{RID}.zip", tenant="acct001", accountId="acct001")


def test_fake_queue_send_has_the_signature_of_queue_sender_send() -> None:
    real = inspect.signature(QueueSender.send)
    fake = inspect.signature(FakeQueue.send)
    assert [(p.name, p.kind, p.default) for p in fake.parameters.values()] == [
        (p.name, p.kind, p.default) for p in real.parameters.values()
    ]


def test_fake_queue_keeps_messages_and_delays_in_order_and_fails_when_told() -> None:
    queue = FakeQueue()
    queue.send(BILL)
    queue.send(BILL, 900)
    queue.errors.append(RuntimeError("SQS unavailable"))
    with pytest.raises(RuntimeError, match="SQS unavailable"):
        queue.send(BILL)
    assert queue.sent == [BILL, BILL] and queue.delays == [None, 900]


def _received(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    for _ in range(5):  # bounded: moto returns everything at once, at most 10 a call
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        bodies += [m["Body"] for m in messages]
    return bodies


def test_fake_sqs_keeps_what_moto_keeps(aws: Any) -> None:
    real, fake = boto3.client("sqs"), FakeSqs()
    bodies = [f"m{i}" for i in range(12)]
    for client in (real, fake):
        assert send_batches(client, aws.recording_queue_url, bodies, sleep=lambda _s: None) == 12
        client.send_message(QueueUrl=aws.recording_queue_url, MessageBody="single")
    assert sorted(_received(real, aws.recording_queue_url)) == sorted(fake.bodies[aws.recording_queue_url])


def test_fake_sqs_refuses_a_batch_of_more_than_ten_like_sqs(aws: Any) -> None:
    entries = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    with pytest.raises(Exception, match="TooManyEntriesInBatchRequest"):
        boto3.client("sqs").send_message_batch(QueueUrl=aws.recording_queue_url, Entries=entries)
    with pytest.raises(ValueError, match="at most 10"):
        FakeSqs().send_message_batch(QueueUrl=aws.recording_queue_url, Entries=entries)
