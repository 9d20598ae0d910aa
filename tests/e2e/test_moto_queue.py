"""The local stack's moto server keeps SQS's queue semantics under concurrent requests (issue 15).

moto's SQS backend takes no lock: two concurrent ReceiveMessage calls could both hand out the same
in-flight message, and a DeleteMessage rebuilt the queue from a snapshot, dropping a message sent
meanwhile. The product's exactly-once logic (and the chaos test's "nothing lost") rests on SQS's
rules, so the local stack serialises SQS as it does DynamoDB (``local.stack.processes.motoserver``). This
test drives the real server process with senders, receivers and deleters at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from botocore.config import Config

pytestmark = pytest.mark.e2e

SENDERS = 4
BATCHES_PER_SENDER = 50  # 10 messages each: 2,000 messages
RECEIVERS = 16
ROUNDS = 600  # bound on each receiver's loop


@pytest.mark.parametrize("round_", range(3))  # a race: each round on unserialised moto fails about half the time
def test_concurrent_receives_sends_and_deletes_lose_nothing_and_never_hand_out_twice(
    moto_server: dict[str, Any], round_: int
) -> None:
    def client() -> Any:  # one per thread: boto3 clients are thread-safe, their pools are not shared
        return moto_server["session"].client(
            "sqs", endpoint_url=moto_server["endpoint_url"], config=Config(max_pool_connections=4)
        )

    sqs = client()
    # Visibility far beyond the test: a message received twice was handed out twice while in flight.
    queue = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    sent: list[str] = []
    received: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    sending = threading.Event()
    sending.set()

    def send(sender: int) -> None:
        own = client()
        for batch in range(BATCHES_PER_SENDER):
            bodies = [f"{sender}-{batch}-{n}" for n in range(10)]
            reply = own.send_message_batch(
                QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies)]
            )
            with lock:
                sent.extend(bodies)
                failures.extend(str(f) for f in reply.get("Failed", []))

    def receive() -> None:
        own = client()
        for _ in range(ROUNDS):
            messages = own.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                if not sending.is_set():
                    return
                continue
            with lock:
                received.update(m["Body"] for m in messages)
            reply = own.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
            with lock:
                failures.extend(str(f) for f in reply.get("Failed", []))

    senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
    receivers = [threading.Thread(target=receive) for _ in range(RECEIVERS)]
    for thread in senders + receivers:
        thread.start()
    for thread in senders:
        thread.join()
    sending.clear()
    for thread in receivers:
        thread.join()
    # whatever the receivers' bounded loops left behind, drained by one client
    for _ in range(ROUNDS):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        received.update(m["Body"] for m in messages)

    assert failures == []
    twice = sorted(body for body, n in received.items() if n > 1)
    assert twice == [], f"{len(twice)} in-flight message(s) handed out twice, e.g. {twice[:5]}"
    lost = sorted(set(sent) - set(received))
    assert lost == [], f"{len(lost)} sent message(s) never received, e.g. {lost[:5]}"
    assert len(sent) == SENDERS * BATCHES_PER_SENDER * 10
