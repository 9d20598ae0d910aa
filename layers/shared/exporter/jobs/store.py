"""The request and callback side of the jobs table (docs/design.md): tenant cursors, window
claims and job items.

Every state change is a conditional write on the expected previous state, so a duplicate or a
racing writer changes nothing and learns it from the return value (``False``) instead of an
exception. Compound changes (claim = window + cursor; request = job + window; re-request =
old job + new job + window) are single ``TransactWriteItems`` calls.

Leases: a worker about to call CC-FS for a ``CLAIMED`` window or a timed-out ``REQUESTED`` job first
sets ``lease_until`` (epoch seconds) conditionally, so two overlapping ticks (EventBridge delivers
at least once) never ask CC-FS twice for the same thing. ``status_at`` is left alone by leases:
it keeps meaning "last status change" for the ``by-status`` GSI.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from exporter.jobs.items import Job, NewJob, WindowClaim, WindowItem, epoch
from exporter.jobs.keys import STATUS_INDEX, JobStatus, cursor_key, job_key, utc_now_iso, window_key
from exporter.jobs.table import CONDITION_FAILED, JobsTable
from exporter.planner import Window

__all__ = [
    "LEASE_SECONDS",
    "JobStore",
    "RecordResult",
]

LEASE_SECONDS = 300
"""How long a worker may hold a CLAIMED window or REQUESTED job while it calls CC-FS."""

MAX_ERROR_CHARS = 500


def _error_text(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


class RecordResult(StrEnum):
    RECORDED = "RECORDED"
    """Job written, window points at it."""
    WINDOW_LOST = "WINDOW_LOST"
    """The window was no longer CLAIMED (another worker recorded it): this responseId is an orphan."""
    JOB_EXISTS = "JOB_EXISTS"
    """A job item with this responseId already exists (its callback arrived first)."""


class JobStore:
    """Conditional reads and writes of the jobs table."""

    def __init__(
        self, table_name: str, retention_days: int = 365, ddb: Any = None, *, jobs_table: JobsTable | None = None
    ) -> None:
        """``ddb``: a low-level DynamoDB client (default: the process's). ``jobs_table``: the table
        access itself, for a stand-in with ``JobsTable``'s methods (tests/fakes)."""
        if jobs_table is None:
            if ddb is None:
                from exporter.aws import client

                ddb = client("dynamodb")
            jobs_table = JobsTable(ddb, table_name)
        self._table = jobs_table
        self.table = table_name
        self.retention_days = retention_days

    def _expires_at(self, now: datetime) -> int:
        return epoch(now + timedelta(days=self.retention_days))

    # ------------------------------------------------------------------ reads

    def get_cursor(self, tenant: str) -> str | None:
        """The tenant's ``next_begin`` (tenant-local ``yyyy-MM-dd HH:mm:ss``), or None."""
        item = self._table.get(cursor_key(tenant))
        return str(item["next_begin"]) if item else None

    def get_job(self, response_id: str) -> Job | None:
        item = self._table.get(job_key(response_id))
        return Job.from_item(item) if item else None

    def get_window(self, tenant: str, window: Window) -> WindowItem | None:
        item = self._table.get(window_key(tenant, window.begin_str, window.end_str))
        return WindowItem.from_item(item) if item else None

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

    # ------------------------------------------------------------------ cursor and claims

    def init_cursor(self, tenant: str, next_begin: str, now: datetime) -> bool:
        """Create the tenant's cursor if it does not exist yet."""
        item = {**cursor_key(tenant), "next_begin": next_begin, "updated_at": utc_now_iso(now)}
        return self._table.put(item, "attribute_not_exists(pk)")

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
            "lease_until": epoch(now) + LEASE_SECONDS,
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
        reasons = self._table.transact(
            [
                {
                    "Put": {
                        "Item": self._window_item(claim, now),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "Key": cursor_key(claim.tenant),
                        "UpdateExpression": "SET next_begin = :next, updated_at = :now",
                        "ConditionExpression": "next_begin = :expected",
                        "ExpressionAttributeValues": {
                            ":next": claim.window.next_begin.strftime("%Y-%m-%d %H:%M:%S"),
                            ":now": utc_now_iso(now),
                            ":expected": expected_cursor,
                        },
                    }
                },
            ]
        )
        return reasons is None

    def claim_backfill_window(self, claim: WindowClaim, now: datetime) -> bool:
        """Claim a backfill window unless it is claimed already. A ``FAILED`` window may be claimed
        again: re-sending a backfill is how an operator retries failed windows."""
        return self._table.put(
            self._window_item(claim, now),
            "attribute_not_exists(pk) OR job_status = :failed",
            {":failed": JobStatus.FAILED.value},
        )

    def lease_window(self, claim: WindowClaim, now: datetime) -> bool:
        """Take the lease of a CLAIMED window before requesting it (reconciler)."""
        return self._table.update(
            claim.key,
            update="SET lease_until = :until",
            condition="job_status = :claimed AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            values={
                ":claimed": JobStatus.CLAIMED.value,
                ":now": epoch(now),
                ":until": epoch(now) + LEASE_SECONDS,
            },
        )

    def note_window_error(self, claim: WindowClaim, error: str, now: datetime) -> bool:
        """Remember why a CLAIMED window could not be requested yet (it stays CLAIMED)."""
        return self._table.update(
            claim.key,
            update="SET last_error = :e, last_error_at = :now ADD request_errors :one",
            condition="job_status = :claimed",
            values={
                ":claimed": JobStatus.CLAIMED.value,
                ":e": _error_text(error),
                ":now": utc_now_iso(now),
                ":one": 1,
            },
        )

    def fail_window(self, claim: WindowClaim, error: str, now: datetime) -> bool:
        """CLAIMED → FAILED (the request was refused for good)."""
        return self._table.update(
            claim.key,
            update="SET job_status = :failed, status_at = :now, #e = :e REMOVE lease_until",
            condition="job_status = :claimed",
            names={"#e": "error"},
            values={
                ":claimed": JobStatus.CLAIMED.value,
                ":failed": JobStatus.FAILED.value,
                ":now": utc_now_iso(now),
                ":e": _error_text(error),
            },
        )

    def window_no_data(self, claim: WindowClaim, now: datetime) -> bool:
        """CLAIMED → done without a job: CC-FS answered "no data found" (0300012)."""
        return self._table.update(
            claim.key,
            update="SET no_data = :true, completed_at = :now REMOVE job_status, status_at, lease_until",
            condition="job_status = :claimed",
            values={
                ":claimed": JobStatus.CLAIMED.value,
                ":true": True,
                ":now": utc_now_iso(now),
            },
        )

    # ------------------------------------------------------------------ jobs

    def record_requested(self, job: NewJob, now: datetime) -> RecordResult:
        """{put job REQUESTED, window.response_id = job; window leaves the GSI} in one transaction."""
        reasons = self._table.transact(
            [
                self._put_new_job(job, now),
                self._point_claimed_window(job, now),
            ]
        )
        if reasons is None:
            return RecordResult.RECORDED
        if reasons[0] == CONDITION_FAILED:
            return RecordResult.JOB_EXISTS
        return RecordResult.WINDOW_LOST

    def _put_new_job(self, job: NewJob, now: datetime) -> dict[str, Any]:
        """Transaction item: the job item, REQUESTED, unless an item for its responseId exists."""
        return {"Put": {"Item": job.item(now, self.retention_days), "ConditionExpression": "attribute_not_exists(pk)"}}

    def _point_claimed_window(self, job: NewJob, now: datetime) -> dict[str, Any]:
        """Transaction item: the CLAIMED window now points at ``job`` and leaves the status GSI."""
        return {
            "Update": {
                "Key": job.claim.key,
                "UpdateExpression": (
                    "SET response_id = :rid, attempt = :attempt, requested_at = :now "
                    "REMOVE job_status, status_at, lease_until"
                ),
                "ConditionExpression": "job_status = :claimed",
                "ExpressionAttributeValues": {
                    ":rid": job.response_id,
                    ":attempt": job.attempt,
                    ":now": utc_now_iso(now),
                    ":claimed": JobStatus.CLAIMED.value,
                },
            }
        }

    def _link_job_update(self, job: NewJob, now: datetime) -> dict[str, Any]:
        """Transaction item: an existing job item (its callback came before we recorded the request)
        gets the window's fields it lacks."""
        fields = {k: v for k, v in job.item(now, self.retention_days).items() if k not in ("pk", "sk")}
        keep = ("tenant", "account_id", "begin_time", "end_time", "data_type", "attempt", "window_pk", "window_sk")
        names = {f"#f{i}": name for i, name in enumerate(keep) if name in fields}
        sets = [f"{alias} = :{alias[1:]}" for alias in names]
        values = {f":{alias[1:]}": fields[name] for alias, name in names.items()}
        return {
            "Update": {
                "Key": job_key(job.response_id),
                "UpdateExpression": "SET " + ", ".join([*sets, "requested_at = :now"]),
                # A callback that came first is the job's only if the ak that signed it signs for
                # this window's tenant (items written before tenants were bound carry no set).
                "ConditionExpression": (
                    "attribute_exists(pk) AND attribute_not_exists(window_pk) AND "
                    "(attribute_not_exists(callback_tenants) OR contains(callback_tenants, :claim_tenant))"
                ),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {**values, ":now": utc_now_iso(now), ":claim_tenant": job.claim.tenant},
            }
        }

    def link_existing_job(self, job: NewJob, now: datetime) -> bool:
        """The job item already exists (its callback came before we recorded the request): give it
        the window's fields it lacks and point the window at it."""
        reasons = self._table.transact(
            [
                self._link_job_update(job, now),
                self._point_claimed_window(job, now),
            ]
        )
        return reasons is None

    def lease_job(self, job: Job, now: datetime) -> bool:
        """Take the lease of a timed-out REQUESTED job before re-requesting it."""
        return self._table.update(
            job_key(job.response_id),
            update="SET lease_until = :until",
            condition=(
                "job_status = :requested AND status_at = :at "
                "AND (attribute_not_exists(lease_until) OR lease_until < :now)"
            ),
            values={
                ":requested": JobStatus.REQUESTED.value,
                ":at": job.status_at,
                ":now": epoch(now),
                ":until": epoch(now) + LEASE_SECONDS,
            },
        )

    def supersede(self, old: Job, new: NewJob, now: datetime) -> RecordResult:
        """{old job REQUESTED → SUPERSEDED, put the new job, window.response_id = new} at once.

        ``JOB_EXISTS``: nothing was written because an item for the new responseId exists already:
        CC-FS called back for it before this was recorded (stored ``UNSOLICITED``); adopt it with
        ``supersede_into_existing``. ``WINDOW_LOST``: the old job or the window changed meanwhile.
        """
        reasons = self._table.transact(
            [
                self._supersede_old(old, new, now),
                self._put_new_job(new, now),
                self._supersede_window(old, new, now),
            ]
        )
        if reasons is None:
            return RecordResult.RECORDED
        if reasons[1] == CONDITION_FAILED and reasons[0] != CONDITION_FAILED:
            return RecordResult.JOB_EXISTS
        return RecordResult.WINDOW_LOST

    def supersede_into_existing(self, old: Job, new: NewJob, now: datetime) -> bool:
        """``supersede`` when the new responseId's item exists (its callback came first): that item
        gets the window's fields instead of being put."""
        reasons = self._table.transact(
            [self._supersede_old(old, new, now), self._link_job_update(new, now), self._supersede_window(old, new, now)]
        )
        return reasons is None

    def _supersede_old(self, old: Job, new: NewJob, now: datetime) -> dict[str, Any]:
        return {
            "Update": {
                "Key": job_key(old.response_id),
                "UpdateExpression": (
                    "SET job_status = :superseded, status_at = :now, superseded_by = :new REMOVE lease_until"
                ),
                "ConditionExpression": "job_status = :requested",
                "ExpressionAttributeValues": {
                    ":superseded": JobStatus.SUPERSEDED.value,
                    ":requested": JobStatus.REQUESTED.value,
                    ":now": utc_now_iso(now),
                    ":new": new.response_id,
                },
            }
        }

    def _supersede_window(self, old: Job, new: NewJob, now: datetime) -> dict[str, Any]:
        return {
            "Update": {
                "Key": new.claim.key,
                "UpdateExpression": "SET response_id = :new, attempt = :attempt, requested_at = :now",
                "ConditionExpression": "response_id = :old",
                "ExpressionAttributeValues": {
                    ":new": new.response_id,
                    ":old": old.response_id,
                    ":attempt": new.attempt,
                    ":now": utc_now_iso(now),
                },
            }
        }

    def fail_requested_job(self, job: Job, error: str, now: datetime) -> bool:
        """{job REQUESTED → FAILED, its window → FAILED} at once."""
        rid = job.response_id
        text = _error_text(error)
        reasons = self._table.transact(
            [
                {
                    "Update": {
                        "Key": job_key(rid),
                        "UpdateExpression": "SET job_status = :failed, status_at = :now, #e = :e REMOVE lease_until",
                        "ConditionExpression": "job_status = :requested",
                        "ExpressionAttributeNames": {"#e": "error"},
                        "ExpressionAttributeValues": {
                            ":failed": JobStatus.FAILED.value,
                            ":requested": JobStatus.REQUESTED.value,
                            ":now": utc_now_iso(now),
                            ":e": text,
                        },
                    }
                },
                {
                    "Update": {
                        "Key": {"pk": str(job.window_pk), "sk": str(job.window_sk)},
                        "UpdateExpression": "SET job_status = :failed, status_at = :now, #e = :e",
                        "ConditionExpression": "response_id = :rid",
                        "ExpressionAttributeNames": {"#e": "error"},
                        "ExpressionAttributeValues": {
                            ":failed": JobStatus.FAILED.value,
                            ":now": utc_now_iso(now),
                            ":e": text,
                            ":rid": rid,
                        },
                    }
                },
            ]
        )
        return reasons is None

    def fail_stalled_job(self, job: Job, error: str, now: datetime) -> bool:
        """DOWNLOADING → FAILED, only if the job has not moved since it was read."""
        return self._table.update(
            job_key(job.response_id),
            update="SET job_status = :failed, status_at = :now, #e = :e",
            condition="job_status = :downloading AND status_at = :at",
            names={"#e": "error"},
            values={
                ":failed": JobStatus.FAILED.value,
                ":downloading": JobStatus.DOWNLOADING.value,
                ":at": job.status_at,
                ":now": utc_now_iso(now),
                ":e": _error_text(error),
            },
        )

    # ------------------------------------------------------------------ callbacks

    def mark_ready(self, response_id: str, bill_file_name: str, now: datetime, *, from_status: JobStatus) -> bool:
        """``from_status`` (REQUESTED, UNSOLICITED or a FAILED job that never had a callback) → READY,
        with ``bill_enqueued = false``."""
        condition = "job_status = :from"
        if from_status is JobStatus.FAILED:
            condition += " AND attribute_not_exists(callback_at)"
        return self._table.update(
            job_key(response_id),
            update=(
                "SET job_status = :ready, bill_file_name = :name, callback_at = if_not_exists(callback_at, :now), "
                "status_at = :now, bill_enqueued = :false REMOVE lease_until"
            ),
            condition=condition,
            values={
                ":from": from_status.value,
                ":ready": JobStatus.READY.value,
                ":name": bill_file_name,
                ":now": utc_now_iso(now),
                ":false": False,
            },
        )

    def set_bill_enqueued(self, response_id: str) -> bool:
        return self._table.update(
            job_key(response_id),
            update="SET bill_enqueued = :true",
            condition="attribute_exists(pk)",
            values={":true": True},
        )

    def clear_failed_window(self, window_pk: str, window_sk: str, response_id: str) -> bool:
        """A FAILED window whose job came back to life (late callback) leaves the GSI again."""
        return self._table.update(
            {"pk": window_pk, "sk": window_sk},
            update="REMOVE job_status, status_at, #e",
            condition="response_id = :rid AND job_status = :failed",
            names={"#e": "error"},
            values={":rid": response_id, ":failed": JobStatus.FAILED.value},
        )

    def record_superseded_callback(self, response_id: str, bill_file_name: str, now: datetime) -> bool:
        """Remember a late callback for a SUPERSEDED job (no download): an operator can replay it."""
        return self._table.update(
            job_key(response_id),
            update=(
                "SET callback_at = if_not_exists(callback_at, :now), bill_file_name = if_not_exists(bill_file_name, :n)"
            ),
            condition="job_status = :superseded AND attribute_not_exists(callback_at)",
            values={
                ":superseded": JobStatus.SUPERSEDED.value,
                ":now": utc_now_iso(now),
                ":n": bill_file_name,
            },
        )

    def put_unsolicited(
        self,
        response_id: str,
        bill_file_name: str,
        tenant: str,
        account_id: str | None,
        now: datetime,
        *,
        owned: frozenset[str] = frozenset(),
    ) -> bool:
        """A job item for a responseId we never asked for (``UNSOLICITED``), if none exists.
        ``owned``: the tenants the callback's ak signs for (``callback_tenants``): only a window of
        one of them can later adopt this item as its job's early callback."""
        item: dict[str, Any] = {
            **job_key(response_id),
            "response_id": response_id,
            "tenant": tenant,
            "job_status": JobStatus.UNSOLICITED.value,
            "status_at": utc_now_iso(now),
            "callback_at": utc_now_iso(now),
            "bill_file_name": bill_file_name,
            "bill_enqueued": False,
            "expires_at": self._expires_at(now),
        }
        if account_id:
            item["account_id"] = account_id
        if owned:
            item["callback_tenants"] = set(owned)
        return self._table.put(item, "attribute_not_exists(pk)")
