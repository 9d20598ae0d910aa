"""Re-exporting a window that was exported already (issue 14): the window item goes back to
``CLAIMED`` so the ordinary request path (``exporter.requesting.request_claimed_window``) asks CC-FS
for it again and points the window at the new job.

A backfill of a window that exists is skipped; a backfill carrying a ``reexport`` token (see
``exporter.messages.BackfillMessage``) re-claims it here, with one conditional update:

- only a window whose export has ended: requested (it points at a job) or answered "no data", not
  ``CLAIMED`` (being requested), and its job COMPLETED, PARTIAL or FAILED (read by the caller; the
  condition on ``response_id`` makes sure the window still points at that job);
- only once per token: ``reexport_token`` is kept on the window, so a redelivered message, or the
  same message's continuation, changes nothing the second time;
- what ``status`` shows: ``reexports`` (how many), ``reexported_at``, ``previous_response_id`` (the
  job the re-export replaces; its CDR objects are removed once the new job's bill is written, see
  ``exporter.operator_actions.retire_replaced_export``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from exporter.jobs import store
from exporter.jobs.items import Job, WindowClaim, WindowItem, epoch
from exporter.jobs.keys import JobStatus, utc_now_iso
from exporter.jobs.table import JobsTable
from exporter.jobs.writes import update

__all__ = ["FINAL_JOB_STATES", "REEXPORT_SOURCE", "ExportState", "WindowReexports", "export_state"]

REEXPORT_SOURCE = "reexport"
"""The window item's ``source`` while a re-export is requested."""

FINAL_JOB_STATES = frozenset({JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED})


class ExportState(StrEnum):
    """Where an existing window stands, for a backfill that found it claimed."""

    EXPORTED = "exported"
    """Its job ended (COMPLETED, PARTIAL, FAILED) or CC-FS had no data: a re-export may start."""
    IN_PROGRESS = "in progress"
    """Being requested (CLAIMED) or its job is still running: leave it alone."""
    GONE = "gone"
    """The item vanished (TTL) between the claim attempt and the read: nothing to say."""


def export_state(item: WindowItem | None, job: Job | None) -> ExportState:
    if item is None:
        return ExportState.GONE
    if item.job_status is not None:  # CLAIMED (or FAILED, which a backfill claims again anyway)
        return ExportState.IN_PROGRESS
    if item.no_data and not item.response_id:
        return ExportState.EXPORTED
    if job is not None and job.job_status in FINAL_JOB_STATES:
        return ExportState.EXPORTED
    return ExportState.IN_PROGRESS


class WindowReexports:
    """The re-export's one write, on the jobs table's one access path (``JobsTable``)."""

    def __init__(self, table: JobsTable) -> None:
        self._table = table

    def reclaim(self, claim: WindowClaim, item: WindowItem, token: str, now: datetime) -> bool:
        """Window → ``CLAIMED`` again for a re-export with ``token``. False when the window moved
        since ``item`` was read (another job, a claim) or this token re-exported it already."""
        at = utc_now_iso(now)
        sets: dict[str, object] = {
            "job_status": JobStatus.CLAIMED,
            "status_at": at,
            "claimed_at": at,
            # the claims' lease (read when called: the local stack shortens it on the store module)
            "lease_until": epoch(now) + store.LEASE_SECONDS,
            "source": REEXPORT_SOURCE,
            "data_type": claim.data_type,
            "reexport_token": token,
            "reexported_at": at,
        }
        when = "attribute_not_exists(job_status) AND (attribute_not_exists(reexport_token) OR reexport_token <> :token)"
        when_values: dict[str, object] = {":token": token}
        if item.response_id:
            sets["previous_response_id"] = item.response_id
            when += " AND response_id = :rid"
            when_values[":rid"] = item.response_id
        else:
            when += " AND attribute_not_exists(response_id)"
        return update(
            claim.key,
            when=when,
            when_values=when_values,
            set=sets,
            remove=("no_data", "completed_at", "last_error", "error"),
            add={"reexports": 1},
        ).apply(self._table)
