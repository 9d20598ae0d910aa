"""Job items on the request side: a requested window gets its job, a timed-out job is re-requested
(superseded) or failed (docs/design.md, "Exactly-once rules").

Each change that moves a window and its job together is one transaction: request = {put job,
window points at it}; re-request = {old job → ``SUPERSEDED``, put the new job, window points at
it}. When CC-FS called back before the request was recorded, the job item exists already
(``UNSOLICITED``): the ``link``/``into_existing`` variants give it the window's fields instead.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from exporter.jobs.items import Job, NewJob
from exporter.jobs.keys import JobStatus, job_key, utc_now_iso
from exporter.jobs.table import CONDITION_FAILED
from exporter.jobs.writes import Put, TableWriter, Update, error_text, transact, update

__all__ = ["JobRequests", "RecordResult"]

_LINKED_FIELDS = ("tenant", "account_id", "begin_time", "end_time", "data_type", "attempt", "window_pk", "window_sk")
"""What an early callback's job item lacks and takes from the window that requested it."""


class RecordResult(StrEnum):
    RECORDED = "RECORDED"
    """Job written, window points at it."""
    WINDOW_LOST = "WINDOW_LOST"
    """The window was no longer CLAIMED (another worker recorded it): this responseId is an orphan."""
    JOB_EXISTS = "JOB_EXISTS"
    """A job item with this responseId already exists (its callback arrived first)."""


class JobRequests(TableWriter):
    """Jobs from ``REQUESTED`` until a callback (or the reconciler) moves them on."""

    def get_job(self, response_id: str) -> Job | None:
        item = self._table.get(job_key(response_id))
        return Job.from_item(item) if item else None

    def record_requested(self, job: NewJob, now: datetime) -> RecordResult:
        """{put job REQUESTED, window.response_id = job; window leaves the GSI} in one transaction."""
        reasons = transact(self._table, self._put_new_job(job, now), self._point_claimed_window(job, now))
        if reasons is None:
            return RecordResult.RECORDED
        if reasons[0] == CONDITION_FAILED:
            return RecordResult.JOB_EXISTS
        return RecordResult.WINDOW_LOST

    def link_existing_job(self, job: NewJob, now: datetime) -> bool:
        """The job item already exists (its callback came before we recorded the request): give it
        the window's fields it lacks and point the window at it."""
        return transact(self._table, self._link_job_update(job, now), self._point_claimed_window(job, now)) is None

    def lease_job(self, job: Job, now: datetime) -> bool:
        """Take the lease of a timed-out REQUESTED job before re-requesting it."""
        expect = {"job_status": JobStatus.REQUESTED, "status_at": job.status_at}
        return self._take_lease(job_key(job.response_id), expect, now)

    def supersede(self, old: Job, new: NewJob, now: datetime) -> RecordResult:
        """{old job REQUESTED → SUPERSEDED, put the new job, window.response_id = new} at once.

        ``JOB_EXISTS``: nothing was written because an item for the new responseId exists already:
        CC-FS called back for it before this was recorded (stored ``UNSOLICITED``); adopt it with
        ``supersede_into_existing``. ``WINDOW_LOST``: the old job or the window changed meanwhile.
        """
        reasons = transact(
            self._table,
            self._supersede_old(old, new, now),
            self._put_new_job(new, now),
            self._supersede_window(old, new, now),
        )
        if reasons is None:
            return RecordResult.RECORDED
        if reasons[1] == CONDITION_FAILED and reasons[0] != CONDITION_FAILED:
            return RecordResult.JOB_EXISTS
        return RecordResult.WINDOW_LOST

    def supersede_into_existing(self, old: Job, new: NewJob, now: datetime) -> bool:
        """``supersede`` when the new responseId's item exists (its callback came first): that item
        gets the window's fields instead of being put."""
        reasons = transact(
            self._table,
            self._supersede_old(old, new, now),
            self._link_job_update(new, now),
            self._supersede_window(old, new, now),
        )
        return reasons is None

    def fail_requested_job(self, job: Job, error: str, now: datetime) -> bool:
        """{job REQUESTED → FAILED, its window → FAILED} at once."""
        failed = {"job_status": JobStatus.FAILED, "status_at": utc_now_iso(now), "error": error_text(error)}
        fail_job = update(
            job_key(job.response_id), expect={"job_status": JobStatus.REQUESTED}, set=failed, remove=("lease_until",)
        )
        window = {"pk": str(job.window_pk), "sk": str(job.window_sk)}
        fail_window = update(window, expect={"response_id": job.response_id}, set=failed)
        return transact(self._table, fail_job, fail_window) is None

    # ------------------------------------------------------------------ transaction items

    def _put_new_job(self, job: NewJob, now: datetime) -> Put:
        """The job item, REQUESTED, unless an item for its responseId exists."""
        return Put(job.item(now, self.retention_days))

    def _point_claimed_window(self, job: NewJob, now: datetime) -> Update:
        """The CLAIMED window now points at ``job`` and leaves the status GSI."""
        return update(
            job.claim.key,
            expect={"job_status": JobStatus.CLAIMED},
            set={"response_id": job.response_id, "attempt": job.attempt, "requested_at": utc_now_iso(now)},
            remove=("job_status", "status_at", "lease_until"),
        )

    def _link_job_update(self, job: NewJob, now: datetime) -> Update:
        """An existing job item (its callback came before we recorded the request) gets the
        window's fields it lacks."""
        fields = job.item(now, self.retention_days)
        return update(
            job_key(job.response_id),
            set={**{name: fields[name] for name in _LINKED_FIELDS if name in fields}, "requested_at": utc_now_iso(now)},
            # A callback that came first is the job's only if the ak that signed it signs for
            # this window's tenant (items written before tenants were bound carry no set).
            when=(
                "attribute_exists(pk) AND attribute_not_exists(window_pk) AND "
                "(attribute_not_exists(callback_tenants) OR contains(callback_tenants, :claim_tenant))"
            ),
            when_values={":claim_tenant": job.claim.tenant},
        )

    def _supersede_old(self, old: Job, new: NewJob, now: datetime) -> Update:
        return update(
            job_key(old.response_id),
            expect={"job_status": JobStatus.REQUESTED},
            set={"job_status": JobStatus.SUPERSEDED, "status_at": utc_now_iso(now), "superseded_by": new.response_id},
            remove=("lease_until",),
        )

    def _supersede_window(self, old: Job, new: NewJob, now: datetime) -> Update:
        return update(
            new.claim.key,
            expect={"response_id": old.response_id},
            set={"response_id": new.response_id, "attempt": new.attempt, "requested_at": utc_now_iso(now)},
        )
