"""In-memory queues: what the domain sends, without SQS (or moto).

* :class:`FakeQueue` stands in for ``exporter.queues.QueueSender``: the domain takes its ``send``
  (``send_bill``, ``send_request``, ``requeue``), so a test passes ``queue.send`` and reads
  ``queue.sent`` (the messages, in order) and ``queue.delays``. ``errors`` fail the next sends.
* :class:`FakeSqs` stands in for the boto3 SQS client where the domain is handed one
  (``bill_fanout.send_batches``): ``send_message`` / ``send_message_batch`` keep the bodies in
  ``bodies[queue_url]``; ``fail_first`` entries of the next batch come back ``Failed``
  (``always_fail``: every entry of every batch).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["FakeQueue", "FakeSqs"]


class FakeQueue:
    """``QueueSender.send`` in memory."""

    def __init__(self) -> None:
        self.sent: list[BaseModel] = []
        self.delays: list[int | None] = []
        self.errors: list[Exception] = []

    def send(self, message: BaseModel, delay: int | None = None) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message)
        self.delays.append(delay)


class FakeSqs:
    """The two SQS calls the product makes, in memory."""

    def __init__(self, *, fail_first: int = 0, always_fail: bool = False) -> None:
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.bodies: dict[str, list[str]] = {}
        self.batches: list[list[str]] = []  # the entry ids of each send_message_batch call

    def send_message(self, *, QueueUrl: str, MessageBody: str, **_: Any) -> dict[str, Any]:
        self.bodies.setdefault(QueueUrl, []).append(MessageBody)
        return {"MessageId": f"m{sum(map(len, self.bodies.values()))}"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if len(Entries) > 10:
            raise ValueError(f"SQS takes at most 10 entries a batch, got {len(Entries)}")
        self.batches.append([e["Id"] for e in Entries])
        failed = Entries if self.always_fail else Entries[: self.fail_first]
        self.fail_first = 0
        for entry in Entries:
            if entry not in failed:
                self.bodies.setdefault(QueueUrl, []).append(entry["MessageBody"])
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed],
        }
