"""The queue messages between the functions: one model per queue, the only definition of each wire format.

Producers build the model and send :func:`message_body` of it; consumers parse the body with the same model
(docs/design.md, "Messages"):

- RequestQueue: :class:`BackfillMessage` (written by users, and by request_export for a backfill's
  continuation);
- BillQueue: :class:`BillMessage` (the callback, and request_export when a callback beat its request);
- RecordingQueue: :class:`RecordingMessage` (the bill step's fan-out, and the copier sending a late
  recording again); the RecordingDLQ holds the same messages.

The wire format (:func:`message_body`) is compact JSON of the fields the producer set, absent optional fields
left out (never ``null``).

The download function consumes three queues; :func:`route` tells its records apart by the queue they
came from and parses each body with that queue's model, so a body that model refuses is refused for
good with the reason (:class:`RefusedMessage`), never retried in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ccfs.models import BillFileName, ResponseId, parse_time
from exporter import layout

if TYPE_CHECKING:
    from exporter.config import Settings

__all__ = [
    "BackfillMessage",
    "BillMessage",
    "DownloadQueues",
    "MessageKind",
    "RecordingMessage",
    "RefusedMessage",
    "Routed",
    "UnroutableMessage",
    "is_schedule_event",
    "is_sqs_batch",
    "message_body",
    "queue_name",
    "recording_tenants",
    "route",
    "validation_reason",
]


def message_body(message: BaseModel) -> str:
    """The SQS ``MessageBody`` of a message: compact JSON of the fields its producer set, ``None``
    ones left out (never ``null``). A field left out is read back as the model's default."""
    return message.model_dump_json(exclude_none=True, exclude_unset=True)


def validation_reason(exc: ValidationError, whole: str = "body") -> str:
    """Which field and what is wrong, for every error, never the received value (``whole``: the
    name of an error about the whole message)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


# ---------------------------------------------------------------------------- RequestQueue


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


class BackfillMessage(BaseModel):
    """RequestQueue body: ``{"accountId"?, "beginTime", "endTime", "dataType"?, "reexport"?}``,
    tenant-local times.

    ``reexport``: an operator's token (``aicc-export reexport`` sends a fresh one): the range's windows
    are requested from CC-FS again even when they were exported already (a window whose export is still
    running is left alone, said so in the log). The same token twice re-exports a window once, so a
    redelivered message changes nothing. Without it a window that exists is skipped (logged, counted).
    """

    model_config = ConfigDict(extra="forbid")

    accountId: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"^\S+$")] | None,
        BeforeValidator(_empty_to_none),
    ] = None
    beginTime: str
    endTime: str
    dataType: Literal["call", "record", "call_record"] = "call_record"
    reexport: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] | None = (
        None
    )

    @model_validator(mode="after")
    def _times(self) -> BackfillMessage:
        try:
            begin, end = parse_time(self.beginTime), parse_time(self.endTime)
        except ValueError as exc:
            raise ValueError(f"{exc} (times are tenant-local yyyy-MM-dd HH:mm:ss)") from None
        if end < begin:
            raise ValueError("endTime is before beginTime")
        return self


# ---------------------------------------------------------------------------- BillQueue


class BillMessage(BaseModel):
    """BillQueue body: ``{"responseId", "billFileName", "tenant", "accountId"?}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    responseId: ResponseId
    billFileName: BillFileName
    tenant: str = Field(min_length=1, max_length=64)
    accountId: str | None = None


# ---------------------------------------------------------------------------- RecordingQueue


class RecordingMessage(BaseModel):
    """RecordingQueue body (docs/design.md, "Messages"); ``ordinal`` is 1-based within ``count``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    keyName: str | None = Field(default=None, min_length=1, max_length=128)
    """The recording's name in its keys when another recording of the call shares its file's stem
    (set by the bill step, :func:`exporter.layout.distinct_stem`); absent otherwise."""
    responseId: ResponseId
    tenant: str = Field(min_length=1)
    accountId: str | None = None
    callId: str = Field(min_length=1, max_length=25)
    callBegin: str
    callEnd: str
    fileName: str = Field(min_length=1, max_length=512)
    originalFileName: str | None = None
    callDate: str | None = None
    ordinal: int = Field(default=1, ge=1)
    count: int = Field(default=1, ge=1)
    ordinalCertain: bool = False
    """The bill step could place this recording among its call's by (call_begin, call_end): every
    row of the call has both times and no other row has the same pair. Absent (older messages):
    not certain, so several URLs are never matched by position."""
    urlOrdinal: int | None = Field(default=None, ge=1)
    urlCount: int | None = Field(default=None, ge=1)
    """Position among the URLs of this recording's own window: the call's rows whose call_begin falls
    within [callBegin, callEnd], the window the copier asks for (usually just this one)."""
    row: dict[str, Any] = Field(default_factory=dict)
    notFoundSince: datetime | None = None
    """When CC-FS first answered "not found" for this listed recording (UTC): the start of its grace
    period. Set on the messages the copier sends again (``RecordingCopier.process``)."""
    notBefore: datetime | None = None
    """Do not ask CC-FS again before this time (UTC): a retry delay longer than SQS's 15-minute
    ``DelaySeconds`` is waited out in hops of at most 15 minutes."""
    lateRetries: int = Field(default=0, ge=0)
    hop: int = Field(default=0, ge=0)
    """How many times this recording's message was sent again by the copier (waiting hops included):
    logged with each postponement, so a recording's history can be followed in the logs."""

    @property
    def stem(self) -> str:
        """The recording's name in its keys (S3, REC item): the file's stem, or ``keyName`` when
        another recording of the call shares that stem (set by the bill step)."""
        return self.keyName or layout.recording_stem(self.fileName)

    @property
    def account(self) -> str:
        return layout.account_partition(self.accountId or self.row.get("account_id"))

    @property
    def day(self) -> date:
        return date.fromisoformat(self.callDate) if self.callDate else layout.call_date(self.callBegin)

    def keys(self) -> tuple[str, str]:
        """``(recording key, sidecar key)``; raises ValueError on data unusable in a key."""
        return (
            layout.recording_key(self.account, self.day, self.callId, self.stem),
            layout.sidecar_key(self.account, self.day, self.callId, self.stem),
        )


def is_sqs_batch(event: Any) -> bool:
    """An SQS event source mapping's batch (request_export: backfill messages from RequestQueue)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def is_schedule_event(event: Any) -> bool:
    """An EventBridge rule's ``Scheduled Event``, or whatever EventBridge Scheduler delivers (its
    default notification, or the schedule's Input). Anything that is not an SQS batch counts: a
    tick is always safe to run (it only claims due windows), so being strict here would only risk
    silently skipping ticks after a change of the schedule's payload."""
    return isinstance(event, dict) and "Records" not in event


# ---------------------------------------------------------------------------- the download's routing


class MessageKind(StrEnum):
    BILL = "bill"
    RECORDING = "recording"
    DEAD_RECORDING = "dead recording"
    """A RecordingQueue message SQS moved to the RecordingDLQ: given an outcome, never copied."""


_MODELS: dict[MessageKind, type[BillMessage] | type[RecordingMessage]] = {
    MessageKind.BILL: BillMessage,
    MessageKind.RECORDING: RecordingMessage,
    MessageKind.DEAD_RECORDING: RecordingMessage,
}


def queue_name(url_or_arn: str) -> str:
    """``https://sqs.../123/name`` or ``arn:aws:sqs:region:123:name`` → ``name``."""
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


@dataclass(frozen=True)
class DownloadQueues:
    """The download function's queues, by URL or ARN (empty: not configured)."""

    bill: str = ""
    recording: str = ""
    dead_recording: str = ""

    @classmethod
    def of(cls, settings: Settings) -> DownloadQueues:
        return cls(settings.bill_queue_url, settings.recording_queue_url, settings.recording_dlq_url)

    def kind_of(self, source: str) -> MessageKind | None:
        """The kind of the records from queue ``source`` (an ARN or URL), None for another queue."""
        name = queue_name(source or "")
        for kind, queue in (
            (MessageKind.BILL, self.bill),
            (MessageKind.RECORDING, self.recording),
            (MessageKind.DEAD_RECORDING, self.dead_recording),
        ):
            if queue and name == queue_name(queue):
                return kind
        return None

    def all_from(self, records: list[dict[str, Any]], kind: MessageKind) -> bool:
        """Whether a batch (raw SQS event records) has several records, every one from ``kind``'s queue."""
        return len(records) > 1 and all(self.kind_of(str(r.get("eventSourceARN") or "")) is kind for r in records)


def recording_tenants(records: list[dict[str, Any]]) -> set[str]:
    """The tenants a batch's recording messages name (bodies the model refuses are left to their record)."""
    tenants: set[str] = set()
    for record in records:
        try:
            tenants.add(RecordingMessage.model_validate_json(str(record.get("body") or "")).tenant)
        except ValidationError:
            continue
    return tenants


@dataclass(frozen=True)
class Routed:
    kind: MessageKind
    message: BillMessage | RecordingMessage


class RefusedMessage(ValueError):
    """A body its queue's model refuses: it can never be processed (consume it, with the reason)."""

    def __init__(self, kind: MessageKind, reason: str) -> None:
        super().__init__(f"{kind} message refused: {reason}")
        self.kind = kind
        self.reason = reason


class UnroutableMessage(ValueError):
    """A record from none of the download's queues whose body is neither a bill nor a recording."""


def route(source: str, raw: str, queues: DownloadQueues) -> Routed:
    """Parse one download record by the queue it came from (``eventSourceARN``).

    A record from another queue (only tools and tests send those) is whichever message its body
    parses as, a bill first; :class:`UnroutableMessage` when it is neither (the record fails, SQS
    retries it, its DLQ alarms). A record from a known queue whose body its model refuses raises
    :class:`RefusedMessage`.
    """
    kind = queues.kind_of(source)
    if kind is None:
        for candidate in (MessageKind.BILL, MessageKind.RECORDING):
            try:
                return Routed(candidate, _MODELS[candidate].model_validate_json(raw))
            except ValidationError:
                continue
        raise UnroutableMessage(f"a message from {queue_name(source) or 'no queue'} is neither a bill nor a recording")
    try:
        return Routed(kind, _MODELS[kind].model_validate_json(raw))
    except ValidationError as exc:
        raise RefusedMessage(kind, validation_reason(exc)) from None
