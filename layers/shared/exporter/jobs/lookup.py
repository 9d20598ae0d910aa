"""Read-only lookups in the jobs table for the operators' CLI (``canary``, ``find``, ``verify``).

Nothing here writes. Keys come from :mod:`exporter.jobs.keys`; items are read as the types of
:mod:`exporter.jobs.items`. Every read is a ``GetItem`` or a ``Query`` bounded by one partition and a
sort-key range: no scans.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ccfs.models import MAX_WINDOW
from exporter.jobs.items import Job, RecordingItem, WindowItem
from exporter.jobs.keys import job_key, recording_key, window_key
from exporter.jobs.table import JobsTable
from exporter.planner import Window

__all__ = ["JobLookup"]


class JobLookup:
    """Read-only access to jobs, windows and REC items. ``ddb`` is a low-level boto3 DynamoDB client."""

    def __init__(self, ddb: Any, table_name: str) -> None:
        self._table = JobsTable(ddb, table_name)

    def window(self, tenant: str, window: Window) -> WindowItem | None:
        item = self._table.get(window_key(tenant, window.begin_str, window.end_str))
        return WindowItem.from_item(item) if item else None

    def job(self, response_id: str) -> Job | None:
        item = self._table.get(job_key(response_id))
        return Job.from_item(item) if item else None

    def recording(self, response_id: str, call_id: str, stem: str) -> RecordingItem | None:
        item = self._table.get(recording_key(response_id, call_id, stem))
        return RecordingItem.from_item(item) if item else None

    def windows_touching(self, tenant: str, day: date, max_pages: int = 20) -> list[WindowItem]:
        """The tenant's window items whose range overlaps the tenant-local ``day``: one query over the
        sort keys that begin between ``day - MAX_WINDOW`` (the longest window) and the day's end."""
        low = window_key(tenant, (day - MAX_WINDOW).strftime("%Y-%m-%d 00:00:00"), "")
        high = window_key(tenant, day.strftime("%Y-%m-%d 23:59:59"), "\uffff")
        items = self._table.query_items(
            max_pages=max_pages,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={":pk": low["pk"], ":low": low["sk"], ":high": high["sk"]},
        )
        first, last = day.strftime("%Y-%m-%d 00:00:00"), (day + timedelta(days=1)).strftime("%Y-%m-%d 00:00:00")
        found = [WindowItem.from_item(item) for item in items]
        return [w for w in found if w.claim.window.end_str >= first and w.claim.window.begin_str < last]
