"""The jobs table's items as types: what the rest of the code reads instead of attribute dicts.

``Job`` (``JOB#{responseId}`` / ``JOB``), ``WindowItem`` (``WINDOW#{tenant}`` / ``begin|end``) and
``RecordingItem`` (``JOB#{responseId}`` / ``REC#{callId}#{stem}``) are read from the table;
``WindowClaim``, ``NewJob`` and ``RecordingOutcome`` are what a worker is about to write. Missing
attributes read as ``None``, ``0``, ``False`` or empty, exactly as the code read them before the
types existed (``item.get(name)``, ``int(item.get(name, 0))``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from exporter.jobs.keys import JobStatus, job_key, response_id_of, tenant_of_window, utc_now_iso, window_key
from exporter.planner import Window

__all__ = ["Job", "NewJob", "RecordingItem", "RecordingOutcome", "WindowClaim", "WindowItem", "epoch"]


def epoch(now: datetime) -> int:
    return int(now.timestamp())


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


_READ: dict[str, Callable[[Any], Any]] = {
    # a field's annotation (a string: ``from __future__ import annotations``) -> how an attribute
    # becomes its value; an absent attribute reads as ``None`` first
    "str | None": lambda v: None if v is None else str(v),
    "int": lambda v: int(v or 0),
    "int | None": _opt_int,
    "bool": bool,
    "JobStatus | None": lambda v: JobStatus(str(v)) if v else None,
    "frozenset[str]": lambda v: frozenset(str(t) for t in v or ()),
    "tuple[str, ...]": lambda v: tuple(str(t) for t in v or ()),
}


def _typed(cls: type, item: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The item's attributes named like ``cls``'s fields, each read as its annotation says."""
    return {f.name: _READ[str(f.type)](item.get(f.name)) for f in fields(cls) if f.name not in skip}


@dataclass(frozen=True)
class Job:
    """A job item: one ``responseId`` from request (or unsolicited callback) to its outcome."""

    response_id: str
    job_status: JobStatus | None = None
    tenant: str | None = None
    account_id: str | None = None
    begin_time: str | None = None
    end_time: str | None = None
    data_type: str | None = None
    attempt: int = 0
    window_pk: str | None = None
    window_sk: str | None = None
    status_at: str | None = None
    requested_at: str | None = None
    callback_at: str | None = None
    """Set by the first callback for this responseId; never changed after."""
    completed_at: str | None = None
    bill_file_name: str | None = None
    bill_enqueued: bool = False
    bill_processed_at: str | None = None
    """Set with the bill's results: until then ``recordings_total`` is not final."""
    error: str | None = None
    superseded_by: str | None = None
    callback_tenants: frozenset[str] = frozenset()
    """The tenants the ak of an unsolicited callback signs for (empty on items from before)."""
    cdr_rows: int = 0
    index_rows: int = 0
    bad_rows: int = 0
    undated_rows: int = 0
    recordings_total: int = 0
    recordings_done: int = 0
    recordings_failed: int = 0
    unexpected_entries: tuple[str, ...] = ()
    """Bill entries whose rows were not exported: a job with any is ``PARTIAL``."""
    empty_entries: tuple[str, ...] = ()
    raw_key: str | None = None
    manifest_key: str | None = None
    cdr_keys: tuple[str, ...] = ()
    index_keys: tuple[str, ...] = ()
    lease_until: int | None = None
    expires_at: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        rid = item.get("response_id") or response_id_of(str(item["pk"]))
        return cls(**{**_typed(cls, item, skip=("response_id",)), "response_id": str(rid)})


@dataclass(frozen=True)
class WindowClaim:
    """What a window item says about the window it claims (enough to request it)."""

    tenant: str
    window: Window
    data_type: str
    account_id: str | None
    source: str

    @property
    def key(self) -> dict[str, str]:
        return window_key(self.tenant, self.window.begin_str, self.window.end_str)


@dataclass(frozen=True)
class WindowItem:
    """A window item: one tenant's time window, ``CLAIMED`` until a job (``response_id``) has it."""

    claim: WindowClaim
    job_status: JobStatus | None = None
    status_at: str | None = None
    claimed_at: str | None = None
    response_id: str | None = None
    attempt: int = 0
    last_error: str | None = None
    error: str | None = None
    no_data: bool = False

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        tenant = item.get("tenant") or tenant_of_window(str(item["pk"])) or ""
        claim = WindowClaim(
            tenant=str(tenant),
            window=Window.from_sk(str(item["sk"])),
            data_type=str(item.get("data_type") or "call_record"),
            account_id=str(item["account_id"]) if item.get("account_id") else None,
            source=str(item.get("source") or "schedule"),
        )
        return cls(**{**_typed(cls, item, skip=("claim",)), "claim": claim})


@dataclass(frozen=True)
class NewJob:
    """A job item about to be written as ``REQUESTED``."""

    response_id: str
    claim: WindowClaim
    attempt: int

    def item(self, now: datetime, retention_days: int) -> dict[str, Any]:
        """Its attributes as written (plain values; ``exporter.jobs.table.to_ddb`` serialises)."""
        wkey = self.claim.key
        item: dict[str, Any] = {
            **job_key(self.response_id),
            "response_id": self.response_id,
            "tenant": self.claim.tenant,
            "begin_time": self.claim.window.begin_str,
            "end_time": self.claim.window.end_str,
            "data_type": self.claim.data_type,
            "attempt": self.attempt,
            "window_pk": wkey["pk"],
            "window_sk": wkey["sk"],
            "job_status": JobStatus.REQUESTED.value,
            "status_at": utc_now_iso(now),
            "requested_at": utc_now_iso(now),
            "bill_enqueued": False,
            "cdr_rows": 0,
            "index_rows": 0,
            "bad_rows": 0,
            "recordings_total": 0,
            "recordings_done": 0,
            "recordings_failed": 0,
            "expires_at": epoch(now + timedelta(days=retention_days)),
        }
        if self.claim.account_id:
            item["account_id"] = self.claim.account_id
        return item


@dataclass(frozen=True)
class RecordingOutcome:
    """What one recording ended as, for its REC item and the manifest."""

    call_id: str
    stem: str
    file_name: str
    status: Literal["DONE", "FAILED"]
    key: str | None = None
    size: int | None = None
    sha256: str | None = None
    source: str | None = None
    error: str | None = None
    message: str | None = None
    """FAILED only: the RecordingQueue body, so an operator's retry can send it again
    (``exporter.operator_actions.retry_failed_recordings``)."""


@dataclass(frozen=True)
class RecordingItem:
    """A REC item: the outcome of one recording of a job, written once (then only FAILED → DONE)."""

    call_id: str | None
    file_name: str | None
    status: str | None
    key: str | None = None
    size: int | None = None
    sha256: str | None = None
    source: str | None = None
    error: str | None = None
    updated_at: str | None = None
    expires_at: int | None = None
    message: str | None = None
    """FAILED items: the RecordingQueue body to send again on an operator's retry."""
    retries: int = 0
    """How many times an operator asked for this recording again (``aicc-export retry-failed``)."""
    retry_at: str | None = None
    """When the last retry was sent (a FAILED item with it is a retry in flight)."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        return cls(**_typed(cls, item))
