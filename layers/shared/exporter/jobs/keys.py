"""Key formats and status names of the jobs table (docs/design.md), in one place.

Nothing outside this module spells ``JOB#``, ``WINDOW#``, ``TENANT#`` or ``REC#``: readers and
writers alike build and take keys apart here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "JOB_SK",
    "REC_PREFIX",
    "STATUS_INDEX",
    "JobStatus",
    "cursor_key",
    "job_key",
    "job_pk",
    "recording_key",
    "recording_sk",
    "response_id_of",
    "tenant_of_window",
    "utc_now_iso",
    "window_key",
    "window_pk",
]

JOB_PREFIX = "JOB#"
WINDOW_PREFIX = "WINDOW#"
TENANT_PREFIX = "TENANT#"
REC_PREFIX = "REC#"
JOB_SK = "JOB"
CURSOR_SK = "CURSOR"
STATUS_INDEX = "by-status"


class JobStatus(StrEnum):
    CLAIMED = "CLAIMED"  # window items only: claimed, not yet requested
    REQUESTED = "REQUESTED"
    READY = "READY"
    DOWNLOADING = "DOWNLOADING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"  # completed, but recordings failed or bill entries were unusable: alarmed, listable
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"
    UNSOLICITED = "UNSOLICITED"


def job_pk(response_id: str) -> str:
    """The partition of a job: its job item and its REC items."""
    return f"{JOB_PREFIX}{response_id}"


def job_key(response_id: str) -> dict[str, str]:
    return {"pk": job_pk(response_id), "sk": JOB_SK}


def response_id_of(pk: str) -> str:
    """The responseId of a job partition key (``JOB#{responseId}``)."""
    return pk.removeprefix(JOB_PREFIX)


def cursor_key(tenant: str) -> dict[str, str]:
    return {"pk": f"{TENANT_PREFIX}{tenant}", "sk": CURSOR_SK}


def window_pk(tenant: str) -> str:
    """The partition of a tenant's window items (one item per window, sk ``{begin}|{end}``)."""
    return f"{WINDOW_PREFIX}{tenant}"


def window_key(tenant: str, begin: str, end: str) -> dict[str, str]:
    """``begin``/``end`` are tenant-local ``yyyy-MM-dd HH:mm:ss`` strings."""
    return {"pk": window_pk(tenant), "sk": f"{begin}|{end}"}


def tenant_of_window(pk: str) -> str | None:
    """The tenant of a window partition key (``WINDOW#{tenant}``); None for any other key."""
    return pk.removeprefix(WINDOW_PREFIX) if pk.startswith(WINDOW_PREFIX) else None


def recording_sk(call_id: str, stem: str) -> str:
    return f"{REC_PREFIX}{call_id}#{stem}"


def recording_key(response_id: str, call_id: str, stem: str) -> dict[str, str]:
    """The REC item of one recording of a job: it exists once the recording has an outcome."""
    return {"pk": job_pk(response_id), "sk": recording_sk(call_id, stem)}


def utc_now_iso(now: datetime | None = None) -> str:
    """ISO-8601 UTC with a ``Z``, second precision: sortable, used for ``status_at``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
