"""Key formats and status names of the jobs table (docs/design.md), in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "JOB_SK",
    "STATUS_INDEX",
    "JobStatus",
    "cursor_key",
    "job_key",
    "recording_sk",
    "utc_now_iso",
    "window_key",
]

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


def job_key(response_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{response_id}", "sk": JOB_SK}


def cursor_key(tenant: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant}", "sk": CURSOR_SK}


def window_key(tenant: str, begin: str, end: str) -> dict[str, str]:
    """``begin``/``end`` are tenant-local ``yyyy-MM-dd HH:mm:ss`` strings."""
    return {"pk": f"WINDOW#{tenant}", "sk": f"{begin}|{end}"}


def recording_sk(call_id: str, stem: str) -> str:
    return f"REC#{call_id}#{stem}"


def utc_now_iso(now: datetime | None = None) -> str:
    """ISO-8601 UTC with a ``Z``, second precision: sortable, used for ``status_at``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
