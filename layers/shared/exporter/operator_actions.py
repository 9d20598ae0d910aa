"""What an operator asks for beyond the schedule (issue 14), and its one function-side consequence.

- :func:`retry_failed_recordings` (``aicc-export retry-failed``): the FAILED recordings of a job are
  asked for again. Each FAILED REC item keeps its RecordingQueue body (``RecordingOutcomes.failed``);
  it is sent again with its late-recording state reset (a fresh grace period), and the item is marked
  ``retry_at`` (a retry in flight, ``retries`` counted). A copy that succeeds turns the item DONE and
  moves the job's counters, manifest and state (``Progress.upgrade_failed``: PARTIAL → COMPLETED); one
  that fails again keeps it FAILED with the new reason (``Progress.fail_again``). Safe to repeat: a
  recording already DONE or with a retry in flight is not sent again, and a duplicate copy is one
  (If-None-Match).
- :func:`retire_replaced_export` (the download function, after a re-exported window's bill step):
  the CDR and recording-index objects and the manifest of the job the re-export replaces are removed,
  so the window's rows are in S3 once (the new job's keys carry its own responseId, the old ones would
  stay beside them). Recordings keep their keys (call id and file name) and are not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from exporter import layout
from exporter.jobs.items import Job, WindowItem
from exporter.jobs.keys import JobStatus, job_key, job_pk, recording_sk, utc_now_iso
from exporter.jobs.manifest import ManifestWriter
from exporter.jobs.queries import failed_recording_items
from exporter.jobs.table import JobsTable
from exporter.jobs.writes import update
from exporter.messages import RecordingMessage, validation_reason

__all__ = ["RETRYABLE_JOB_STATES", "RetryReport", "retire_replaced_export", "retry_failed_recordings"]

RETRYABLE_JOB_STATES = frozenset({JobStatus.PARTIAL, JobStatus.DOWNLOADING, JobStatus.COMPLETED})
"""A job whose FAILED recordings may be retried: its completion is re-evaluated when they succeed
(a FAILED job is not: re-export its window)."""


@dataclass
class RetryReport:
    response_id: str
    job_status: str | None = None
    sent: list[str] = field(default_factory=list)
    """call_id/file of each recording sent again."""
    in_flight: list[str] = field(default_factory=list)
    not_retryable: dict[str, str] = field(default_factory=dict)
    """call_id/file -> why it cannot be retried."""
    refused: str | None = None
    """Why nothing of this job could be retried (missing, not in a retryable state)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "responseId": self.response_id,
            "jobStatus": self.job_status,
            "sent": self.sent,
            "inFlight": self.in_flight,
            "notRetryable": self.not_retryable,
            "refused": self.refused,
        }


def _fresh(body: str) -> RecordingMessage:
    """The stored body with its late-recording state reset: a new grace period from now."""
    message = RecordingMessage.model_validate_json(body)
    return message.model_copy(update={"notFoundSince": None, "notBefore": None, "lateRetries": 0})


def retry_failed_recordings(
    table: JobsTable, send: Callable[[RecordingMessage], None], response_id: str, now: datetime
) -> RetryReport:
    """Send every FAILED recording of job ``response_id`` again (see the module docstring)."""
    report = RetryReport(response_id)
    item = table.get(job_key(response_id))
    if item is None:
        report.refused = "no such job"
        return report
    job = Job.from_item(item)
    report.job_status = job.job_status.value if job.job_status else None
    if job.job_status not in RETRYABLE_JOB_STATES:
        report.refused = (
            f"job is {report.job_status}: only PARTIAL or DOWNLOADING jobs retry recordings (re-export its window)"
        )
        return report
    for sk, rec in failed_recording_items(table, response_id):
        name = f"{rec.call_id}/{rec.file_name}"
        if rec.retry_at:
            report.in_flight.append(name)
            continue
        if not rec.message:
            report.not_retryable[name] = "no stored message (failed before retries existed): re-export its window"
            continue
        try:
            message = _fresh(rec.message)
        except ValidationError as exc:
            report.not_retryable[name] = f"stored message unusable: {validation_reason(exc)}"
            continue
        if recording_sk(message.callId, message.stem) != sk:
            report.not_retryable[name] = "stored message names another recording"
            continue
        send(message)
        update(
            {"pk": job_pk(response_id), "sk": sk},
            expect={"status": "FAILED"},
            set={"retry_at": utc_now_iso(now)},
            add={"retries": 1},
        ).apply(table)
        report.sent.append(name)
    return report


# ---------------------------------------------------------------------------- re-export, function side


def _manifest_keys(manifests: ManifestWriter, response_id: str) -> list[str] | None:
    """The CDR and index keys a job's manifest lists, and the manifest's own; None without one."""
    document = manifests.read(response_id)
    if document is None:
        return None
    listed = [*document.get("cdr", []), *document.get("recording_index", [])]
    keys = [str(entry["key"]) for entry in listed if isinstance(entry, dict) and entry.get("key")]
    return [*keys, layout.manifest_key(response_id)]


def retire_replaced_export(table: JobsTable, s3: Any, bucket: str, response_id: str, now: datetime) -> list[str]:
    """After the bill step of job ``response_id``: when it is a re-export of a window (the window
    points at it and names the job it replaces), remove the replaced job's CDR/index objects and
    manifest, and mark both items (``replaced_by`` on the old job, ``retired_response_id`` on the
    window). Returns the keys removed; nothing for any other job, or the second time."""
    item = table.get(job_key(response_id))
    job = Job.from_item(item) if item else None
    if job is None or not job.window_pk or not job.window_sk:
        return []
    window_raw = table.get({"pk": job.window_pk, "sk": job.window_sk})
    if window_raw is None:
        return []
    window = WindowItem.from_item(window_raw)
    previous = window_raw.get("previous_response_id")
    if window.response_id != response_id or not previous or previous == response_id:
        return []
    if window_raw.get("retired_response_id") == previous:
        return []
    keys = _manifest_keys(ManifestWriter(s3, bucket, lambda: now), str(previous)) or []
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
        )
    update(
        job_key(str(previous)),
        when="attribute_exists(pk)",
        set={"replaced_by": response_id, "replaced_at": utc_now_iso(now)},
    ).apply(table)
    update(
        {"pk": job.window_pk, "sk": job.window_sk},
        expect={"previous_response_id": str(previous)},
        set={"retired_response_id": str(previous)},
    ).apply(table)
    return keys
