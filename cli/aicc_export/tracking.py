"""Following the windows a command sent (``backfill --wait``, ``reexport --wait``) in the jobs table,
with a live progress bar (click's) on standard error: windows done, jobs, CDR rows, recordings, bytes.

A window is done when CC-FS had no data for it, it FAILED, or its job ended (COMPLETED, PARTIAL,
FAILED). For a re-export, only once the window carries that re-export's token (before that, the
message has not been processed yet). Ctrl-C stops the waiting, never the work.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from exporter.jobs.items import Job
from exporter.jobs.keys import JobStatus
from exporter.jobs.queries import WindowView, is_final, job, recording_bytes, window_views
from exporter.jobs.table import JobsTable

__all__ = ["POLL_SECONDS", "Tracker", "WindowState"]

POLL_SECONDS = 2.0


@dataclass
class WindowState:
    sk: str
    state: str = "queued"
    """queued (message not processed yet), requesting, requested, downloading, done, no data, failed"""
    response_id: str | None = None
    job_status: str | None = None
    error: str | None = None
    cdr_rows: int = 0
    recordings_total: int = 0
    recordings_done: int = 0
    recordings_failed: int = 0
    bytes: int = 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "no data", "failed")

    @property
    def ok(self) -> bool:
        return self.state in ("done", "no data") and self.job_status in (None, JobStatus.COMPLETED.value)

    def as_dict(self) -> dict[str, Any]:
        """camelCase, as every --json field; absent values left out."""
        return {
            "".join(w if i == 0 else w.title() for i, w in enumerate(k.split("_"))): v
            for k, v in self.__dict__.items()
            if v not in (None, "")
        }


@dataclass
class Tracker:
    table: JobsTable
    tenant: str
    sks: list[str]
    token: str | None = None
    failed_before: dict[str, str | None] = field(default_factory=dict)
    """Windows FAILED before the messages were sent (sk -> their ``status_at``): a backfill claims
    them again, so until their status changes they are still queued, not failed."""
    states: dict[str, WindowState] = field(default_factory=dict)
    _final_bytes: dict[str, int] = field(default_factory=dict)

    def _state_of(self, sk: str, view: WindowView | None) -> WindowState:
        out = WindowState(sk)
        if view is None or (self.token is not None and view.reexport_token != self.token):
            return out
        item = view.item
        if item.job_status is JobStatus.CLAIMED:
            out.state = "requesting"
            return out
        if item.job_status is JobStatus.FAILED:
            if sk in self.failed_before and self.failed_before[sk] == item.status_at:
                return out  # not claimed again yet
            out.state, out.error = "failed", item.error
            return out
        if not item.response_id:
            out.state = "no data" if item.no_data else "queued"
            return out
        found = job(self.table, item.response_id)
        out.response_id = item.response_id
        if found is None:
            out.state = "requested"
            return out
        self._fill(out, found)
        return out

    def _fill(self, out: WindowState, found: Job) -> None:
        out.job_status = found.job_status.value if found.job_status else None
        out.error = found.error
        out.cdr_rows = found.cdr_rows
        out.recordings_total = found.recordings_total
        out.recordings_done = found.recordings_done
        out.recordings_failed = found.recordings_failed
        rid = found.response_id
        if is_final(found):
            out.state = "failed" if found.job_status is JobStatus.FAILED else "done"
            if rid not in self._final_bytes:
                self._final_bytes[rid] = recording_bytes(self.table, rid)
            out.bytes = self._final_bytes[rid]
        else:
            out.state = "downloading" if found.job_status is JobStatus.DOWNLOADING else "requested"
            out.bytes = recording_bytes(self.table, rid) if found.recordings_done else 0

    def poll(self) -> dict[str, WindowState]:
        pending = [sk for sk in self.sks if not (sk in self.states and self.states[sk].finished)]
        for sk, view in window_views(self.table, self.tenant, pending).items():
            self.states[sk] = self._state_of(sk, view)
        return self.states

    def summary(self) -> dict[str, int]:
        states = [self.states.get(sk, WindowState(sk)) for sk in self.sks]
        return {
            "windows": len(self.sks),
            "windowsDone": sum(s.finished for s in states),
            "jobs": sum(1 for s in states if s.response_id),
            "jobsDone": sum(1 for s in states if s.response_id and s.finished),
            "cdrRows": sum(s.cdr_rows for s in states),
            "recordings": sum(s.recordings_total for s in states),
            "recordingsDone": sum(s.recordings_done for s in states),
            "recordingsFailed": sum(s.recordings_failed for s in states),
            "bytes": sum(s.bytes for s in states),
        }

    @property
    def finished(self) -> bool:
        return all(sk in self.states and self.states[sk].finished for sk in self.sks)

    def wait(self, timeout: float, *, bar: bool = True, clock: Callable[[], float] = time.monotonic) -> bool:
        """Poll until every window is finished or ``timeout`` seconds (0: no limit) passed, with a
        progress bar on standard error (``bar``). True when finished. KeyboardInterrupt propagates."""
        deadline = clock() + timeout if timeout > 0 else None
        pause = threading.Event()  # never set: a bounded pause between polls of the condition

        def show(_: int | None) -> str | None:
            s = self.summary()
            return (
                f"jobs {s['jobsDone']}/{s['jobs']}  CDR rows {s['cdrRows']}  recordings "
                f"{s['recordingsDone']}/{s['recordings']} ({s['recordingsFailed']} failed)  {_size(s['bytes'])}"
            )

        with click.progressbar(
            length=len(self.sks), label="windows", show_pos=True, item_show_func=show, file=sys.stderr, hidden=not bar
        ) as progress:
            done = 0
            while True:
                self.poll()
                now_done = self.summary()["windowsDone"]
                progress.update(now_done - done)
                done = now_done
                if self.finished:
                    return True
                if deadline is not None and clock() >= deadline:
                    return False
                pause.wait(POLL_SECONDS)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
