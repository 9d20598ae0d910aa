"""A backfill message request_export can never process goes to the RequestDLQ at once, with the
reason (issue 14): not retried for hours into the DLQ with no reason on it.

The body is moved unchanged (an operator fixes it and sends it again, or ``aicc-export redrive``
moves it back once the stack is fixed); the reason travels as message attributes, which is where
``aicc-export status`` reads it. request_export counts it (``BackfillRefused``, alarmed) and logs the
reason with the message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exporter import aws
from exporter.config import ConfigError
from exporter.jobs.keys import utc_now_iso

__all__ = ["REASON_ATTRIBUTE", "REFUSED_AT_ATTRIBUTE", "SOURCE_MESSAGE_ATTRIBUTE", "RefusedBackfills"]

REASON_ATTRIBUTE = "refusedReason"
REFUSED_AT_ATTRIBUTE = "refusedAt"
SOURCE_MESSAGE_ATTRIBUTE = "sourceMessageId"
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class RefusedBackfills:
    """Moves refused RequestQueue bodies to the RequestDLQ (``REQUEST_DLQ_URL``)."""

    queue_url: str

    def send(self, body: str, reason: str, message_id: str, now: datetime) -> None:
        if not self.queue_url:
            raise ConfigError("REQUEST_DLQ_URL is not set: a refused backfill message has nowhere to go")
        attributes = {
            REASON_ATTRIBUTE: reason[:MAX_REASON_CHARS] or "refused",
            REFUSED_AT_ATTRIBUTE: utc_now_iso(now),
            SOURCE_MESSAGE_ATTRIBUTE: message_id or "unknown",
        }
        aws.client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=body or "(empty body)",
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
