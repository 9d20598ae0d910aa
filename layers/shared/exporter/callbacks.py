"""What an authentic, valid bill callback does to the jobs table and the BillQueue.

The callback must answer CC-FS within a second and CC-FS repeats callbacks (every 10 minutes until
it sees success, and sometimes anyway), so this is a small state machine on the job item, every
step a conditional write (docs/design.md, "Exactly-once rules"):

- ``REQUESTED`` → ``READY`` (``bill_enqueued = false``) → one BillQueue message → ``bill_enqueued = true``.
- ``READY`` with ``bill_enqueued`` still false (the send failed before) → send again, set the flag.
- ``READY``/``DOWNLOADING``/``COMPLETED`` or a ``FAILED`` job that already had its callback → duplicate:
  nothing written, nothing sent.
- A ``FAILED`` job that never had a callback (the reconciler gave up waiting) → late data is still
  data: ``READY`` again, bill sent, its window leaves ``FAILED``.
- ``SUPERSEDED`` (re-requested after the timeout) → the callback is remembered on the item
  (``callback_at``, ``bill_file_name``) for an operator, no download: the window's current job will
  deliver the same data.
- Unknown responseId → an ``UNSOLICITED`` item of the signing ak's tenant, no download, unless
  ``ALLOW_UNSOLICITED``.

Before any of that the callback is bound to the developer account that signed it (seed 000: one
developer account, one ak/sk, per tenant): the job must belong to a tenant of the verified ak, and a
non-empty ``accountId`` must be such a tenant (and the job's). Anything else is ``FOREIGN``: nothing
written, nothing sent, the handler answers 403 — a tenant cannot complete another tenant's job.

A failed send raises: the handler answers 5xx, CC-FS calls back again, and the ``READY`` +
``bill_enqueued = false`` state makes that retry send the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from ccfs.models import BillCallbackBody
from exporter.config import ALL_ACCOUNTS
from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus
from exporter.jobs.store import JobStore
from exporter.messages import BillMessage

__all__ = [
    "OUTCOME_METRICS",
    "BillSender",
    "CallbackOutcome",
    "bill_message",
    "enqueue_bill",
    "process_callback",
    "promote_early_callback",
]

BillSender = Callable[[BillMessage], None]
"""Sends one BillQueue message (serialised by the adapter with :func:`exporter.messages.body`)."""

_MAX_ROUNDS = 4


class CallbackOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    """REQUESTED → READY, bill message sent."""
    RE_ENQUEUED = "RE_ENQUEUED"
    """READY whose earlier send had failed: bill message sent now."""
    REVIVED = "REVIVED"
    """A FAILED job that never had its callback got it late: READY, bill message sent."""
    DUPLICATE = "DUPLICATE"
    """Already handled: nothing written, nothing sent."""
    SUPERSEDED = "SUPERSEDED"
    """Late callback for a re-requested job: remembered, no download."""
    UNSOLICITED = "UNSOLICITED"
    """Unknown responseId: recorded as UNSOLICITED, no download."""
    UNSOLICITED_ACCEPTED = "UNSOLICITED_ACCEPTED"
    """Unknown responseId with ALLOW_UNSOLICITED: READY, bill message sent."""
    FOREIGN = "FOREIGN"
    """Signed by an ak whose tenants the job or accountId does not belong to: refused, nothing written."""


OUTCOME_METRICS: dict[CallbackOutcome, tuple[str, ...]] = {
    CallbackOutcome.ACCEPTED: ("CallbacksAccepted",),
    CallbackOutcome.RE_ENQUEUED: ("CallbacksAccepted",),
    CallbackOutcome.REVIVED: ("CallbacksAccepted",),
    CallbackOutcome.DUPLICATE: ("CallbackDuplicate",),
    CallbackOutcome.SUPERSEDED: ("CallbackDuplicate",),
    CallbackOutcome.UNSOLICITED: ("CallbackUnsolicited",),
    CallbackOutcome.UNSOLICITED_ACCEPTED: ("CallbackUnsolicited", "CallbacksAccepted"),
    CallbackOutcome.FOREIGN: ("CallbackRejected", "CallbackTenantMismatch"),
}
"""Metric names (count 1 each) per outcome (docs/design.md metric list)."""


def bill_message(job: Job) -> BillMessage:
    """The BillQueue message for a READY job: ``{responseId, billFileName, tenant, accountId?}``."""
    return BillMessage(
        responseId=job.response_id,
        billFileName=str(job.bill_file_name),
        tenant=job.tenant or ALL_ACCOUNTS,
        accountId=job.account_id or None,
    )


def account_mismatch(owned: frozenset[str], account_id: str | None) -> bool:
    """Whether a callback's non-empty ``accountId`` names a tenant its ak does not sign for (with
    the whole developer account exported, ``_all``, any accountId is the ak's own)."""
    return bool(account_id) and ALL_ACCOUNTS not in owned and account_id not in owned


def _job_mismatch(owned: frozenset[str], job: Job, account_id: str | None) -> bool:
    if (job.tenant or ALL_ACCOUNTS) not in owned:
        return True
    return bool(account_id and job.account_id and account_id != job.account_id)


def _unsolicited_tenant(owned: frozenset[str], account_id: str | None) -> str | None:
    """The tenant an unknown responseId is attributed to: the accountId (already checked to be one
    of the ak's), else the ak's only tenant; None when the ak signs for several and none is named."""
    if account_id:
        return account_id if account_id in owned else ALL_ACCOUNTS
    return next(iter(owned)) if len(owned) == 1 else None


def enqueue_bill(store: JobStore, send_bill: BillSender, job: Job) -> None:
    """Send the job's one bill message, then remember it was sent."""
    send_bill(bill_message(job))
    store.set_bill_enqueued(job.response_id)


def process_callback(
    store: JobStore,
    send_bill: BillSender,
    body: BillCallbackBody,
    *,
    allow_unsolicited: bool,
    now: datetime,
    owned: frozenset[str],
) -> CallbackOutcome:
    """Apply one authentic, validated callback signed by an ak that signs for the tenants ``owned``
    (``TenantKeys.tenants_of``). Idempotent: replaying it changes nothing more."""
    rid = body.responseId
    name = body.billFileName
    if not owned or account_mismatch(owned, body.accountId):
        return CallbackOutcome.FOREIGN
    for _ in range(_MAX_ROUNDS):
        job = store.get_job(rid)
        if job is None:
            tenant = _unsolicited_tenant(owned, body.accountId)
            # An ak shared by several tenants (the secret's default) naming none: kept for an
            # operator, never downloaded, since no tenant can be told the bill is its own.
            if not store.put_unsolicited(rid, name, tenant or ALL_ACCOUNTS, body.accountId, now, owned=owned):
                continue  # the item appeared meanwhile: look again
            if not allow_unsolicited or tenant is None:
                return CallbackOutcome.UNSOLICITED
            job = Job(rid, JobStatus.UNSOLICITED, tenant=tenant, account_id=body.accountId)
        elif _job_mismatch(owned, job, body.accountId):
            return CallbackOutcome.FOREIGN

        status = job.job_status
        if status == JobStatus.REQUESTED:
            if not store.mark_ready(rid, name, now, from_status=JobStatus.REQUESTED):
                continue
            enqueue_bill(store, send_bill, replace(job, bill_file_name=name))
            return CallbackOutcome.ACCEPTED
        if status == JobStatus.UNSOLICITED and allow_unsolicited and not job.bill_enqueued:
            if not store.mark_ready(rid, name, now, from_status=JobStatus.UNSOLICITED):
                continue
            enqueue_bill(store, send_bill, replace(job, bill_file_name=name))
            return CallbackOutcome.UNSOLICITED_ACCEPTED
        if status == JobStatus.READY and not job.bill_enqueued:
            enqueue_bill(store, send_bill, job)
            return CallbackOutcome.RE_ENQUEUED
        if status == JobStatus.FAILED and job.callback_at is None:
            if not store.mark_ready(rid, name, now, from_status=JobStatus.FAILED):
                continue
            enqueue_bill(store, send_bill, replace(job, bill_file_name=name))
            if job.window_pk and job.window_sk:
                store.clear_failed_window(job.window_pk, job.window_sk, rid)
            return CallbackOutcome.REVIVED
        if status == JobStatus.SUPERSEDED and job.callback_at is None:
            store.record_superseded_callback(rid, name, now)
            return CallbackOutcome.SUPERSEDED
        return CallbackOutcome.DUPLICATE
    raise RuntimeError(f"job {rid} kept changing while its callback was applied; CC-FS will call back again")


def promote_early_callback(store: JobStore, send_bill: BillSender, response_id: str, now: datetime) -> bool:
    """The callback of a request arrived before the request was recorded (an ``UNSOLICITED`` item,
    now linked to its window): treat it as the job's callback. Returns whether a bill was sent."""
    job = store.get_job(response_id)
    if job is None or not job.bill_file_name:
        return False
    status = job.job_status
    if status == JobStatus.UNSOLICITED:
        if not store.mark_ready(response_id, job.bill_file_name, now, from_status=JobStatus.UNSOLICITED):
            return False
        enqueue_bill(store, send_bill, job)
        return True
    if status == JobStatus.READY and not job.bill_enqueued:
        enqueue_bill(store, send_bill, job)
        return True
    return False
