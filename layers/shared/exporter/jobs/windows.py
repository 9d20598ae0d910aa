"""Tenant cursors and window items: claiming a window, and what becomes of a claim that has no
job yet (docs/design.md, "Exactly-once rules").

A scheduled claim is one transaction {put the window if absent, move the cursor if it still holds
what was read}, so two ticks never claim the same window. A ``CLAIMED`` window is in the
``by-status`` index until a job points at it (``exporter.jobs.requests``), it fails for good, or
CC-FS has no data for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.jobs.items import WindowClaim, WindowItem, epoch
from exporter.jobs.keys import JobStatus, cursor_key, utc_now_iso, window_key
from exporter.jobs.writes import Put, TableWriter, error_text, transact, update
from exporter.planner import Window

__all__ = ["Windows"]


class Windows(TableWriter):
    """Cursor and window items."""

    def get_cursor(self, tenant: str) -> str | None:
        """The tenant's ``next_begin`` (tenant-local ``yyyy-MM-dd HH:mm:ss``), or None."""
        item = self._table.get(cursor_key(tenant))
        return str(item["next_begin"]) if item else None

    def get_window(self, tenant: str, window: Window) -> WindowItem | None:
        item = self._table.get(window_key(tenant, window.begin_str, window.end_str))
        return WindowItem.from_item(item) if item else None

    def init_cursor(self, tenant: str, next_begin: str, now: datetime) -> bool:
        """Create the tenant's cursor if it does not exist yet."""
        return Put({**cursor_key(tenant), "next_begin": next_begin, "updated_at": utc_now_iso(now)}).apply(self._table)

    def _window_item(self, claim: WindowClaim, now: datetime) -> dict[str, Any]:
        item: dict[str, Any] = {
            **claim.key,
            "tenant": claim.tenant,
            "begin_time": claim.window.begin_str,
            "end_time": claim.window.end_str,
            "data_type": claim.data_type,
            "source": claim.source,
            "attempt": 0,
            "job_status": JobStatus.CLAIMED.value,
            "status_at": utc_now_iso(now),
            "claimed_at": utc_now_iso(now),
            "lease_until": epoch(now) + self.lease_seconds,
            "expires_at": self._expires_at(now),
        }
        if claim.account_id:
            item["account_id"] = claim.account_id
        return item

    def claim_scheduled_window(self, claim: WindowClaim, *, expected_cursor: str, now: datetime) -> bool:
        """Claim ``claim.window`` and move the cursor past it, in one transaction.

        Fails (``False``) when the window item exists or the cursor no longer holds
        ``expected_cursor``: another tick got there first.
        """
        move_cursor = update(
            cursor_key(claim.tenant),
            expect={"next_begin": expected_cursor},
            set={
                "next_begin": claim.window.next_begin.strftime("%Y-%m-%d %H:%M:%S"),
                "updated_at": utc_now_iso(now),
            },
        )
        return transact(self._table, Put(self._window_item(claim, now)), move_cursor) is None

    def claim_backfill_window(self, claim: WindowClaim, now: datetime) -> bool:
        """Claim a backfill window unless it is claimed already. A ``FAILED`` window may be claimed
        again: re-sending a backfill is how an operator retries failed windows."""
        return Put(
            self._window_item(claim, now),
            "attribute_not_exists(pk) OR job_status = :failed",
            {":failed": JobStatus.FAILED.value},
        ).apply(self._table)

    def lease_window(self, claim: WindowClaim, now: datetime) -> bool:
        """Take the lease of a CLAIMED window before requesting it (reconciler)."""
        return self._take_lease(claim.key, {"job_status": JobStatus.CLAIMED}, now)

    def note_window_error(self, claim: WindowClaim, error: str, now: datetime) -> bool:
        """Remember why a CLAIMED window could not be requested yet (it stays CLAIMED)."""
        return update(
            claim.key,
            expect={"job_status": JobStatus.CLAIMED},
            set={"last_error": error_text(error), "last_error_at": utc_now_iso(now)},
            add={"request_errors": 1},
        ).apply(self._table)

    def fail_window(self, claim: WindowClaim, error: str, now: datetime) -> bool:
        """CLAIMED → FAILED (the request was refused for good)."""
        return update(
            claim.key,
            expect={"job_status": JobStatus.CLAIMED},
            set={"job_status": JobStatus.FAILED, "status_at": utc_now_iso(now), "error": error_text(error)},
            remove=("lease_until",),
        ).apply(self._table)

    def window_no_data(self, claim: WindowClaim, now: datetime) -> bool:
        """CLAIMED → done without a job: CC-FS answered "no data found" (0300012)."""
        return update(
            claim.key,
            expect={"job_status": JobStatus.CLAIMED},
            set={"no_data": True, "completed_at": utc_now_iso(now)},
            remove=("job_status", "status_at", "lease_until"),
        ).apply(self._table)

    def clear_failed_window(self, window_pk: str, window_sk: str, response_id: str) -> bool:
        """A FAILED window whose job came back to life (late callback) leaves the GSI again."""
        return update(
            {"pk": window_pk, "sk": window_sk},
            expect={"response_id": response_id, "job_status": JobStatus.FAILED},
            remove=("job_status", "status_at", "error"),
        ).apply(self._table)
