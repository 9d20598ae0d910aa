"""Read-only queries over the jobs table for operators (``aicc-export status``, ``backfill --wait``,
``reexport``, ``retry-failed``): a tenant's windows, jobs by state, a job's recordings.

Everything goes through ``JobsTable`` (one client, one serialisation) and the key formats of
``exporter.jobs.keys``; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.jobs.items import Job, RecordingItem, WindowItem
from exporter.jobs.keys import JOB_SK, REC_PREFIX, STATUS_INDEX, JobStatus, job_key, job_pk, utc_now_iso, window_pk
from exporter.jobs.reexport import FINAL_JOB_STATES
from exporter.jobs.table import JobsTable

__all__ = [
    "WindowView",
    "failed_recording_items",
    "failed_recordings",
    "is_final",
    "is_job",
    "items_in_state",
    "job",
    "recording_bytes",
    "window_views",
    "windows",
]


@dataclass(frozen=True)
class WindowView:
    """A window item with the operator-facing attributes the typed item leaves out."""

    item: WindowItem
    raw: dict[str, Any]

    @property
    def sk(self) -> str:
        return str(self.raw["sk"])

    @property
    def reexports(self) -> int:
        return int(self.raw.get("reexports") or 0)

    @property
    def reexported_at(self) -> str | None:
        value = self.raw.get("reexported_at")
        return str(value) if value else None

    @property
    def reexport_token(self) -> str | None:
        value = self.raw.get("reexport_token")
        return str(value) if value else None

    @property
    def previous_response_id(self) -> str | None:
        value = self.raw.get("previous_response_id")
        return str(value) if value else None


def windows(
    table: JobsTable, tenant: str, *, newest_first: bool = True, begin_from: str | None = None, limit: int | None = None
) -> Iterator[WindowView]:
    """A tenant's window items by begin time (``begin_from``: tenant-local ``yyyy-MM-dd HH:mm:ss``,
    windows beginning at or after it), at most ``limit``."""
    values: dict[str, Any] = {":pk": window_pk(tenant)}
    condition = "pk = :pk"
    if begin_from:
        condition += " AND sk >= :from"
        values[":from"] = begin_from
    items = table.query_items(
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
        ScanIndexForward=not newest_first,
        ConsistentRead=True,
    )
    for seen, raw in enumerate(items, start=1):
        yield WindowView(WindowItem.from_item(raw), raw)
        if limit is not None and seen >= limit:
            return


def window_views(table: JobsTable, tenant: str, sks: list[str]) -> dict[str, WindowView | None]:
    """The window items ``WINDOW#{tenant}`` / each of ``sks`` (None where there is none)."""
    out: dict[str, WindowView | None] = {}
    for sk in sks:
        raw = table.get({"pk": window_pk(tenant), "sk": sk})
        out[sk] = WindowView(WindowItem.from_item(raw), raw) if raw else None
    return out


def job(table: JobsTable, response_id: str) -> Job | None:
    raw = table.get(job_key(response_id))
    return Job.from_item(raw) if raw else None


def items_in_state(table: JobsTable, status: JobStatus, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every item (jobs and windows) in ``status`` on the ``by-status`` index, changed since ``since``."""
    condition = "job_status = :s"
    values: dict[str, Any] = {":s": status.value}
    if since is not None:
        condition += " AND status_at >= :t"
        values[":t"] = utc_now_iso(since)
    yield from table.query_items(
        IndexName=STATUS_INDEX, KeyConditionExpression=condition, ExpressionAttributeValues=values
    )


def is_job(raw: dict[str, Any]) -> bool:
    return raw.get("sk") == JOB_SK


def is_final(job_: Job | None) -> bool:
    return job_ is not None and job_.job_status in FINAL_JOB_STATES


def failed_recording_items(table: JobsTable, response_id: str) -> Iterator[tuple[str, RecordingItem]]:
    """``(sk, item)`` of every FAILED REC item of a job, consistent read."""
    for raw in table.query_items(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :rec)",
        ExpressionAttributeValues={":pk": job_pk(response_id), ":rec": REC_PREFIX},
        ConsistentRead=True,
    ):
        if raw.get("status") == "FAILED":
            yield str(raw["sk"]), RecordingItem.from_item(raw)


def failed_recordings(table: JobsTable, response_id: str) -> Iterator[RecordingItem]:
    """The FAILED REC items of a job (with their reasons; ``retry_at``: a retry in flight)."""
    for _sk, item in failed_recording_items(table, response_id):
        yield item


def recording_bytes(table: JobsTable, response_id: str) -> int:
    """The bytes of a job's recordings copied so far (DONE REC items)."""
    total = 0
    for raw in table.query_items(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :rec)",
        ExpressionAttributeValues={":pk": job_pk(response_id), ":rec": REC_PREFIX},
        ProjectionExpression="#s, #z",
        ExpressionAttributeNames={"#s": "status", "#z": "size"},
    ):
        if raw.get("status") == "DONE":
            total += int(raw.get("size") or 0)
    return total
