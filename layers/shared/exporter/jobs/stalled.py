"""What the reconciler looks for: items left in a status for too long (the ``by-status`` index,
oldest first, bounded per tick), and the one transition it makes without a request: a download
that stalled fails loudly (docs/design.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from exporter.jobs.items import Job, WindowItem
from exporter.jobs.keys import STATUS_INDEX, JobStatus, job_key, utc_now_iso
from exporter.jobs.writes import TableWriter, error_text, update

__all__ = ["Stalled"]


class Stalled(TableWriter):
    """Items stuck in a status, and failing a stalled download."""

    def _by_status(
        self, status: JobStatus, before: datetime, page_size: int, max_pages: int
    ) -> Iterator[dict[str, Any]]:
        """Items in ``status`` whose ``status_at`` is older than ``before``, oldest first; at most
        ``page_size * max_pages`` items (the rest waits for the next tick)."""
        return self._table.query_items(
            IndexName=STATUS_INDEX,
            KeyConditionExpression="job_status = :s AND status_at < :t",
            ExpressionAttributeValues={":s": status.value, ":t": utc_now_iso(before)},
            Limit=page_size,
            max_pages=max_pages,
        )

    def jobs_in(
        self, status: JobStatus, before: datetime, *, page_size: int = 100, max_pages: int = 5
    ) -> Iterator[Job]:
        """Jobs in ``status`` since before ``before`` (the ``by-status`` index), oldest first, bounded."""
        for item in self._by_status(status, before, page_size, max_pages):
            yield Job.from_item(item)

    def claimed_windows(self, before: datetime, *, page_size: int = 100, max_pages: int = 5) -> Iterator[WindowItem]:
        """Windows ``CLAIMED`` since before ``before`` and not yet requested, oldest first, bounded."""
        for item in self._by_status(JobStatus.CLAIMED, before, page_size, max_pages):
            yield WindowItem.from_item(item)

    def fail_stalled_job(self, job: Job, error: str, now: datetime) -> bool:
        """DOWNLOADING → FAILED, only if the job has not moved since it was read."""
        return update(
            job_key(job.response_id),
            expect={"job_status": JobStatus.DOWNLOADING, "status_at": job.status_at},
            set={"job_status": JobStatus.FAILED, "status_at": utc_now_iso(now), "error": error_text(error)},
        ).apply(self._table)
