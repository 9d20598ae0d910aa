"""Job items on the callback side: a callback makes its job ``READY`` (and the bill is enqueued
once), a late one is remembered, an unknown one is kept as ``UNSOLICITED`` (docs/design.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.jobs.keys import JobStatus, job_key, utc_now_iso
from exporter.jobs.writes import IfAbsent, Put, TableWriter, update

__all__ = ["Readiness"]


class Readiness(TableWriter):
    """What a callback writes."""

    def mark_ready(self, response_id: str, bill_file_name: str, now: datetime, *, from_status: JobStatus) -> bool:
        """``from_status`` (REQUESTED, UNSOLICITED or a FAILED job that never had a callback) → READY,
        with ``bill_enqueued = false``."""
        return update(
            job_key(response_id),
            expect={"job_status": from_status},
            when="attribute_not_exists(callback_at)" if from_status is JobStatus.FAILED else "",
            set={
                "job_status": JobStatus.READY,
                "bill_file_name": bill_file_name,
                "callback_at": IfAbsent(utc_now_iso(now)),
                "status_at": utc_now_iso(now),
                "bill_enqueued": False,
            },
            remove=("lease_until",),
        ).apply(self._table)

    def set_bill_enqueued(self, response_id: str) -> bool:
        return update(job_key(response_id), when="attribute_exists(pk)", set={"bill_enqueued": True}).apply(self._table)

    def record_superseded_callback(self, response_id: str, bill_file_name: str, now: datetime) -> bool:
        """Remember a late callback for a SUPERSEDED job (no download): an operator can replay it."""
        return update(
            job_key(response_id),
            expect={"job_status": JobStatus.SUPERSEDED},
            when="attribute_not_exists(callback_at)",
            set={"callback_at": IfAbsent(utc_now_iso(now)), "bill_file_name": IfAbsent(bill_file_name)},
        ).apply(self._table)

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
        return Put(item).apply(self._table)
