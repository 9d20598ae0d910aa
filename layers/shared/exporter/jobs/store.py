"""The request and callback side of the jobs table (docs/design.md), as one object: ``JobStore``
composes the parts, each a module of its own:

- ``windows``: tenant cursors, window claims and what becomes of a claim without a job;
- ``requests``: job items from ``REQUESTED`` (request, re-request, failure);
- ``readiness``: what a callback writes (``READY``, late and unsolicited callbacks);
- ``stalled``: what the reconciler finds in the ``by-status`` index, and stalled downloads failed;
- ``writes``: the one conditional-write helper they all use.

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

from typing import Any

from exporter.jobs.readiness import Readiness
from exporter.jobs.requests import JobRequests, RecordResult
from exporter.jobs.stalled import Stalled
from exporter.jobs.table import JobsTable
from exporter.jobs.windows import Windows
from exporter.jobs.writes import MAX_ERROR_CHARS

__all__ = [
    "LEASE_SECONDS",
    "MAX_ERROR_CHARS",
    "JobStore",
    "RecordResult",
]

LEASE_SECONDS = 300
"""How long a worker may hold a CLAIMED window or REQUESTED job while it calls CC-FS (read when a
``JobStore`` is made: the local stack scales it down by setting this name)."""


class JobStore(Windows, JobRequests, Readiness, Stalled):
    """Conditional reads and writes of the jobs table: every part's methods on one object."""

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
        super().__init__(jobs_table, retention_days=retention_days, lease_seconds=LEASE_SECONDS)
        self.table = table_name
