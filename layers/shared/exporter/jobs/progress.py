"""The download side of the jobs table: a job's progress, one REC item per recording, and its
completion (docs/design.md).

The download side owns these transitions, each a conditional write so duplicates and races change
nothing:

- ``READY → DOWNLOADING`` (bill message; ``DOWNLOADING`` again = a retry, carry on);
- bill results (row counts, ``recordings_total``, keys) set while ``DOWNLOADING``;
- one recording counted once: transaction {put ``REC#{call_id}#{stem}`` if absent, ADD
  ``recordings_done`` or ``recordings_failed``};
- ``DOWNLOADING → COMPLETED`` (or ``PARTIAL``: recordings failed, bill entries unusable) by
  whichever worker sees ``done + failed >= total``;
- ``DOWNLOADING → FAILED`` when the bill itself is unusable.

The manifest (``exporter.jobs.manifest``) is written by the bill step and rewritten by the
completing worker *before* the status flips to ``COMPLETED``, so a crash in between is repaired by
the next delivery, never leaving a completed job with a stale manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from exporter.aws import logger
from exporter.jobs.items import Job, RecordingItem, RecordingOutcome
from exporter.jobs.keys import REC_PREFIX, JobStatus, job_key, job_pk, recording_key, utc_now_iso
from exporter.jobs.manifest import ManifestWriter
from exporter.jobs.table import CONDITION_FAILED, JobsTable
from exporter.jobs.writes import Put, transact, update

__all__ = [
    "BILL_PROCESSED",
    "JOB_METRICS",
    "JobMissing",
    "Progress",
    "outcome_of",
]

BILL_PROCESSED = "bill_processed_at"
"""Job attribute set with the bill's results: until then ``recordings_total`` is not final."""


JOB_METRICS: dict[JobStatus, str] = {
    JobStatus.COMPLETED: "JobsCompleted",
    JobStatus.PARTIAL: "JobsPartial",  # alarmed
    JobStatus.FAILED: "JobsFailed",  # alarmed
}
"""The metric a job's final status is counted under, by whoever made the change (the transitions
here return it; the caller's handler emits it, ``exporter.tally``)."""


class JobMissing(RuntimeError):
    """A message names a responseId the jobs table does not know (or no longer knows)."""


def outcome_of(job: Job) -> JobStatus:
    """``COMPLETED`` when everything listed was exported; ``PARTIAL`` when a recording failed or a
    bill entry could not be used (``unexpected_entries``; header-only ``empty_entries`` are
    counted and listed but not a failure: a window with no calls legitimately gives them). Never a
    plain COMPLETED over missing data (docs/design.md)."""
    if job.recordings_failed > 0 or job.unexpected_entries:
        return JobStatus.PARTIAL
    return JobStatus.COMPLETED


@dataclass
class Progress:
    """The jobs table and the manifests for one response's download. Clients are boto3 clients
    (``ddb`` a low-level DynamoDB client)."""

    ddb: Any
    s3: Any
    table: str
    bucket: str
    retention_days: int = 365
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    jobs_table: JobsTable | None = field(default=None, repr=False)
    """The table access itself, for a stand-in with ``JobsTable``'s methods (tests/fakes)."""
    _table: JobsTable = field(init=False, repr=False)
    manifests: ManifestWriter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = self.jobs_table or JobsTable(self.ddb, self.table)
        self.manifests = ManifestWriter(self.s3, self.bucket, lambda: self.clock())

    # ------------------------------------------------------------------ job

    def get_job(self, response_id: str) -> Job | None:
        item = self._table.get(job_key(response_id))
        return Job.from_item(item) if item else None

    def _set(
        self, response_id: str, expected: JobStatus, values: Mapping[str, Any], *, status: JobStatus | None = None
    ) -> bool:
        """SET ``values`` (and ``status`` with ``status_at``) while the job is in ``expected``."""
        changes: dict[str, Any] = {}
        if status is not None:
            changes = {"job_status": status, "status_at": utc_now_iso(self.clock())}
        changes.update(values)
        return update(job_key(response_id), expect={"job_status": expected}, set=changes).apply(self._table)

    def _set_status(
        self, response_id: str, new: JobStatus, expected: JobStatus, extra: Mapping[str, Any] | None = None
    ) -> bool:
        return self._set(response_id, expected, extra or {}, status=new)

    def begin_download(self, response_id: str) -> tuple[Literal["started", "resumed", "skip"], Job]:
        """``READY → DOWNLOADING``. ``resumed`` = already DOWNLOADING (a retry); ``skip`` = any other
        state (COMPLETED, FAILED, SUPERSEDED, ...): nothing to do. Raises :class:`JobMissing`."""
        if self._set_status(response_id, JobStatus.DOWNLOADING, JobStatus.READY):
            job = self.get_job(response_id)
            if job is None:  # pragma: no cover - deleted between two consistent operations
                raise JobMissing(response_id)
            return "started", job
        job = self.get_job(response_id)
        if job is None:
            raise JobMissing(f"job {response_id} does not exist")
        if job.job_status == JobStatus.DOWNLOADING:
            return "resumed", job
        return "skip", job

    def save_bill_results(self, response_id: str, results: Mapping[str, Any]) -> bool:
        """SET the bill step's results while the job is DOWNLOADING (same values on a retry)."""
        return self._set(response_id, JobStatus.DOWNLOADING, results)

    def fail_job(self, response_id: str, error: str) -> bool:
        """``DOWNLOADING → FAILED`` with ``error``. True when this call made the change (to be counted
        as ``JOB_METRICS[FAILED]``, JobsFailed)."""
        return self._set_status(response_id, JobStatus.FAILED, JobStatus.DOWNLOADING, {"error": error[:1000]})

    # ------------------------------------------------------------------ recordings

    def get_recording(self, response_id: str, call_id: str, stem: str) -> RecordingItem | None:
        item = self._table.get(recording_key(response_id, call_id, stem))
        return RecordingItem.from_item(item) if item else None

    def record_recording(self, response_id: str, outcome: RecordingOutcome) -> bool:
        """Count one recording once, in one ``TransactWriteItems`` (the REC item put if absent + the
        job's counter). False = it was already recorded (by an earlier delivery)."""
        now = self.clock()
        item = {
            **recording_key(response_id, outcome.call_id, outcome.stem),
            "status": outcome.status,
            "call_id": outcome.call_id,
            "file_name": outcome.file_name,
            "key": outcome.key,
            "size": outcome.size,
            "sha256": outcome.sha256,
            "source": outcome.source,
            "error": outcome.error[:1000] if outcome.error else None,
            "message": outcome.message if outcome.status == "FAILED" else None,
            "updated_at": utc_now_iso(now),
            "expires_at": int((now + timedelta(days=self.retention_days)).timestamp()),
        }
        counter = "recordings_done" if outcome.status == "DONE" else "recordings_failed"
        reasons = transact(
            self._table,
            Put(item, "attribute_not_exists(sk)"),
            update(job_key(response_id), when="attribute_exists(pk)", add={counter: 1}),
        )
        if reasons is None:
            return True
        if reasons[0] == CONDITION_FAILED:
            return False  # the REC item exists: counted by an earlier delivery
        raise JobMissing(f"job {response_id} does not exist")

    def upgrade_failed(self, response_id: str, outcome: RecordingOutcome) -> bool:
        """A recording recorded FAILED was copied after all (a delivery still running when its
        twin was settled from the dead-letter queue): REC ``FAILED → DONE`` and the job's counters
        moved from failed to done, in one transaction. False when the REC item is not FAILED."""
        if outcome.status != "DONE":
            return False
        now = self.clock()
        sets = {"status": "DONE", "key": outcome.key, "size": outcome.size, "sha256": outcome.sha256}
        sets.update({"source": outcome.source, "updated_at": utc_now_iso(now)})
        reasons = transact(
            self._table,
            update(
                recording_key(response_id, outcome.call_id, outcome.stem),
                expect={"status": "FAILED"},
                set=sets,
                remove=("error", "message", "retry_at"),
            ),
            update(
                job_key(response_id),
                when="attribute_exists(pk)",
                add={"recordings_done": 1, "recordings_failed": -1},
            ),
        )
        if reasons is not None:
            return False
        job = self.get_job(response_id)
        # The manifest named it a failure; the job may now be whole. Several such recordings may be
        # upgraded at once (an operator's retry): each writer reads the counters again after its
        # write and writes again if they moved, so the last manifest matches the final counters.
        for _ in range(5):
            if not job or job.job_status not in (JobStatus.COMPLETED, JobStatus.PARTIAL):
                break
            final = outcome_of(job)
            self.write_final_manifest(job, final)
            if final != job.job_status:
                self._set_status(response_id, final, job.job_status)
            again = self.get_job(response_id)
            if again is None or (again.recordings_done, again.recordings_failed) == (
                job.recordings_done,
                job.recordings_failed,
            ):
                break
            job = again
        logger.info("recording recorded FAILED was copied after all", extra={"response_id": response_id})
        return True

    def fail_again(self, response_id: str, outcome: RecordingOutcome) -> bool:
        """A recording recorded FAILED failed once more (an operator's retry): the REC item keeps
        FAILED with the new reason and is no longer a retry in flight. Counters unchanged."""
        if outcome.status != "FAILED":
            return False
        return update(
            recording_key(response_id, outcome.call_id, outcome.stem),
            expect={"status": "FAILED"},
            when="attribute_exists(retry_at)",
            set={"error": (outcome.error or "failed")[:1000], "updated_at": utc_now_iso(self.clock())},
            remove=("retry_at",),
        ).apply(self._table)

    def iter_recordings(self, response_id: str) -> Iterator[RecordingItem]:
        """Every REC item of a job, consistent read, page by page."""
        for item in self._table.query_items(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :rec)",
            ExpressionAttributeValues={":pk": job_pk(response_id), ":rec": REC_PREFIX},
            ConsistentRead=True,
        ):
            yield RecordingItem.from_item(item)

    # ------------------------------------------------------------------ completion

    def maybe_complete(self, response_id: str) -> JobStatus | None:
        """Complete the job when every recording is accounted for: final manifest, then
        ``DOWNLOADING → COMPLETED``, or ``→ PARTIAL`` when recordings failed or bill entries were
        unusable (:func:`outcome_of`). The status when this call completed it (to be counted as
        ``JOB_METRICS[status]``: JobsCompleted or JobsPartial, the latter alarmed), else None."""
        job = self.get_job(response_id)
        if not job or job.job_status != JobStatus.DOWNLOADING or job.bill_processed_at is None:
            return None
        done = job.recordings_done
        failed = job.recordings_failed
        if done + failed < job.recordings_total:
            return None
        final = outcome_of(job)
        self.write_final_manifest(job, final)
        if not self._set_status(response_id, final, JobStatus.DOWNLOADING, {"completed_at": utc_now_iso(self.clock())}):
            return None  # a concurrent worker completed it (with the same manifest)
        log = logger.info if final is JobStatus.COMPLETED else logger.warning
        log(
            "job completed" if final is JobStatus.COMPLETED else "job completed with failures",
            extra={"response_id": response_id, "recordings_done": done, "recordings_failed": failed},
        )
        return final

    def write_final_manifest(self, job: Job, status: JobStatus) -> str:
        """The manifest with every REC item of ``job`` (see ``ManifestWriter.write_final``)."""
        return self.manifests.write_final(job, status, self.iter_recordings(job.response_id))
