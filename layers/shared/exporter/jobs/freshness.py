"""Freshness: how old the newest complete export window of a tenant is (a read of the jobs table).

A window is complete when CC-FS had no data for it (``no_data``) or the job it points at
(``response_id``) is ``COMPLETED`` or ``PARTIAL`` (its CDRs are exported; what failed is alarmed
and listed on its own). Its age is ``now`` minus the window's end (tenant-local, turned into UTC
with the tenant's zone).

The tenant's window partition (``WINDOW#{tenant}``, sort key ``begin|end``) is read newest first,
one job ``GetItem`` per window that has a job, until a complete window is found or
``max_windows`` were looked at (windows still downloading, failed or waiting for a callback sit
in front of it). When none is found the tenant's data is missing at least since the begin of the
oldest window looked at (or since its cursor when it has no window yet): that age is reported,
marked ``complete=False``, so a tenant that never completed a window is a value that grows, not
a silence (the alarm treats missing data as fine: an idle stack must not alarm).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ccfs.models import parse_time
from exporter.jobs.keys import JobStatus, cursor_key, job_key, window_pk
from exporter.planner import Window

__all__ = ["COMPLETE_STATUSES", "Freshness", "FreshnessReader"]

COMPLETE_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.PARTIAL})
"""Job statuses whose window counts as exported."""

_PAGE = 25


class _Table(Protocol):
    """The part of ``exporter.jobs.table.JobsTable`` this module reads with."""

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None: ...

    def query_items(self, *, max_pages: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class Freshness:
    """One tenant's freshness at ``now``."""

    tenant: str
    hours: float
    """Hours since the end of the newest complete window (or, ``complete=False``, at least this long
    since the tenant's data is missing)."""
    complete: bool
    """A complete window was found; False: ``hours`` is a lower bound (none among those looked at)."""
    newest_complete: str | None = None
    """The newest complete window's sort key (``begin|end``, tenant-local), when found."""


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


def _hours(now: datetime, since: datetime) -> float:
    return round(max(timedelta(0), now - since).total_seconds() / 3600, 2)


class FreshnessReader:
    """Reads each tenant's newest complete window from the jobs table (bounded per tenant)."""

    def __init__(self, table: _Table, *, max_windows: int = 100) -> None:
        self.table = table
        self.max_windows = max_windows

    @classmethod
    def of_store(cls, store: Any) -> FreshnessReader:
        """A reader over a ``JobStore``'s own table access (the process's client, or the stand-in
        a test gave the store), so freshness reads the table the tick just wrote."""
        return cls(store._table)

    def _windows_newest_first(self, tenant: str) -> Iterator[dict[str, Any]]:
        return self.table.query_items(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": window_pk(tenant)},
            ScanIndexForward=False,
            Limit=_PAGE,
            max_pages=-(-self.max_windows // _PAGE),
        )

    def _is_complete(self, item: Mapping[str, Any]) -> bool:
        if item.get("no_data"):
            return True
        if not item.get("response_id") or item.get("job_status"):  # CLAIMED or FAILED: no job to read
            return False
        job = self.table.get(job_key(str(item["response_id"])))
        return job is not None and job.get("job_status") in COMPLETE_STATUSES

    def measure(self, tenant: str, zone: ZoneInfo, now: datetime) -> Freshness:
        """The tenant's freshness at ``now`` (aware UTC); see the module docstring."""
        oldest: Window | None = None
        for seen, item in enumerate(self._windows_newest_first(tenant)):
            if seen >= self.max_windows:
                break
            window = Window.from_sk(str(item["sk"]))
            if self._is_complete(item):
                ended = _utc(window.next_begin, zone)
                return Freshness(tenant, _hours(now, ended), complete=True, newest_complete=window.sk)
            oldest = window
        if oldest is not None:
            return Freshness(tenant, _hours(now, _utc(oldest.begin, zone)), complete=False)
        cursor = self.table.get(cursor_key(tenant))
        since = _utc(parse_time(str(cursor["next_begin"])), zone) if cursor else now
        return Freshness(tenant, _hours(now, since), complete=False)
