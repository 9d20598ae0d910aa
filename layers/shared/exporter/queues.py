"""Sending a queue message: the one adapter every producer uses, so every body on every queue is
:func:`exporter.messages.message_body` of its model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from exporter import aws
from exporter.config import ConfigError
from exporter.messages import message_body

__all__ = ["QueueSender"]


@dataclass(frozen=True)
class QueueSender:
    """Sends messages to one queue; a queue the stack did not configure fails with its variable's name."""

    queue_url: str
    variable: str

    def send(self, message: BaseModel, delay: int | None = None) -> None:
        """Send ``message``, after ``delay`` seconds (≤ 900) when given, else the queue's own delay."""
        if not self.queue_url:
            raise ConfigError(f"{self.variable} is not set")
        extra: dict[str, Any] = {} if delay is None else {"DelaySeconds": delay}
        aws.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=message_body(message), **extra)
