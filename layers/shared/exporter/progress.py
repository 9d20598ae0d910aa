"""Job progress in the jobs table and the job's manifest in S3 (docs/design.md).

The download side owns these transitions, each a conditional write so duplicates and races change
nothing:

- ``READY → DOWNLOADING`` (bill message; ``DOWNLOADING`` again = a retry, carry on);
- bill results (row counts, ``recordings_total``, keys) set while ``DOWNLOADING``;
- one recording counted once: transaction {put ``REC#{call_id}#{stem}`` if absent, ADD
  ``recordings_done`` or ``recordings_failed``};
- ``DOWNLOADING → COMPLETED`` (or ``PARTIAL``: recordings failed, bill entries unusable) by
  whichever worker sees ``done + failed >= total``;
- ``DOWNLOADING → FAILED`` when the bill itself is unusable.

The manifest ``manifests/{responseId}.json`` is written by the bill step (status ``DOWNLOADING``,
or ``FAILED``) and rewritten by the completing worker, which takes the bill step's manifest as its
base and adds every recording and failure. The final manifest is written *before* the status flips
to ``COMPLETED`` so a crash in between is repaired by the next delivery, never leaving a completed
job with a stale manifest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from exporter import layout
from exporter.aws import logger, metrics
from exporter.keys import JobStatus, job_key, recording_sk, utc_now_iso

__all__ = [
    "BILL_PROBLEMS",
    "BILL_PROCESSED",
    "COUNTERS",
    "JobMissing",
    "Progress",
    "RecordingOutcome",
    "outcome_of",
]

BILL_PROCESSED = "bill_processed_at"
"""Job attribute set with the bill's results: until then ``recordings_total`` is not final."""
COUNTERS = ("cdr_rows", "index_rows", "bad_rows", "recordings_total", "recordings_done", "recordings_failed")
MANIFEST_CONTENT_TYPE = "application/json"

_ser = TypeSerializer()
_de = TypeDeserializer()


class JobMissing(RuntimeError):
    """A message names a responseId the jobs table does not know (or no longer knows)."""


BILL_PROBLEMS = ("unexpected_entries",)
"""Job attributes listing bill entries whose rows were not exported: a job with any is ``PARTIAL``.
(``empty_entries``, header-only entries, are counted and listed but not a failure: a window with
no calls, or calls without recordings, legitimately gives them.)"""


def outcome_of(job: Mapping[str, Any]) -> JobStatus:
    """``COMPLETED`` when everything listed was exported; ``PARTIAL`` when a recording failed or a
    bill entry could not be used. Never a plain COMPLETED over missing data (docs/design.md)."""
    if int(job.get("recordings_failed", 0)) > 0 or any(job.get(name) for name in BILL_PROBLEMS):
        return JobStatus.PARTIAL
    return JobStatus.COMPLETED


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _to_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def _from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class RecordingOutcome:
    """What one recording ended as, for its REC item and the manifest."""

    call_id: str
    stem: str
    file_name: str
    status: Literal["DONE", "FAILED"]
    key: str | None = None
    size: int | None = None
    sha256: str | None = None
    source: str | None = None
    error: str | None = None


@dataclass
class Progress:
    """Jobs-table and manifest access for one response's download. Clients are boto3 clients."""

    ddb: Any
    s3: Any
    table: str
    bucket: str
    retention_days: int = 365
    clock: Any = field(default=lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ job

    def get_job(self, response_id: str) -> dict[str, Any] | None:
        reply = self.ddb.get_item(TableName=self.table, Key=_to_ddb(job_key(response_id)), ConsistentRead=True)
        return _from_ddb(reply["Item"]) if "Item" in reply else None

    def _set_status(
        self, response_id: str, new: JobStatus, expected: JobStatus, extra: Mapping[str, Any] | None = None
    ) -> bool:
        names = {"#s": "job_status", "#at": "status_at"}
        values: dict[str, Any] = {":new": new.value, ":exp": expected.value, ":at": utc_now_iso(self.clock())}
        sets = ["#s = :new", "#at = :at"]
        for i, (name, value) in enumerate((extra or {}).items()):
            names[f"#x{i}"] = name
            values[f":x{i}"] = value
            sets.append(f"#x{i} = :x{i}")
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=_to_ddb(job_key(response_id)),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :exp",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_ddb(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def begin_download(self, response_id: str) -> tuple[Literal["started", "resumed", "skip"], dict[str, Any]]:
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
        if job.get("job_status") == JobStatus.DOWNLOADING:
            return "resumed", job
        return "skip", job

    def save_bill_results(self, response_id: str, results: Mapping[str, Any]) -> bool:
        """SET the bill step's results while the job is DOWNLOADING (same values on a retry)."""
        names = {"#s": "job_status"}
        values: dict[str, Any] = {":dl": JobStatus.DOWNLOADING.value}
        sets = []
        for i, (name, value) in enumerate(results.items()):
            names[f"#r{i}"] = name
            values[f":r{i}"] = value
            sets.append(f"#r{i} = :r{i}")
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=_to_ddb(job_key(response_id)),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :dl",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_ddb(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def fail_job(self, response_id: str, error: str) -> bool:
        """``DOWNLOADING → FAILED`` with ``error``; metric JobsFailed when this call made the change."""
        changed = self._set_status(response_id, JobStatus.FAILED, JobStatus.DOWNLOADING, {"error": error[:1000]})
        if changed:
            metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        return changed

    # ------------------------------------------------------------------ recordings

    def get_recording(self, response_id: str, call_id: str, stem: str) -> dict[str, Any] | None:
        reply = self.ddb.get_item(
            TableName=self.table,
            Key=_to_ddb({"pk": f"JOB#{response_id}", "sk": recording_sk(call_id, stem)}),
            ConsistentRead=True,
        )
        return _from_ddb(reply["Item"]) if "Item" in reply else None

    def record_recording(self, response_id: str, outcome: RecordingOutcome) -> bool:
        """Count one recording once. False = it was already recorded (by an earlier delivery)."""
        now = self.clock()
        item = {
            "pk": f"JOB#{response_id}",
            "sk": recording_sk(outcome.call_id, outcome.stem),
            "status": outcome.status,
            "call_id": outcome.call_id,
            "file_name": outcome.file_name,
            "key": outcome.key,
            "size": outcome.size,
            "sha256": outcome.sha256,
            "source": outcome.source,
            "error": outcome.error[:1000] if outcome.error else None,
            "updated_at": utc_now_iso(now),
            "expires_at": int((now + timedelta(days=self.retention_days)).timestamp()),
        }
        counter = "recordings_done" if outcome.status == "DONE" else "recordings_failed"
        try:
            self.ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": _to_ddb(item),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _to_ddb(job_key(response_id)),
                            "UpdateExpression": "ADD #c :one",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#c": counter},
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False  # the REC item exists: counted by an earlier delivery
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise JobMissing(f"job {response_id} does not exist") from None
            raise  # a conflict with a concurrent transaction: transient, the message is retried
        return True

    def upgrade_failed(self, response_id: str, outcome: RecordingOutcome) -> bool:
        """A recording recorded FAILED was copied after all (a delivery still running when its
        twin was settled from the dead-letter queue): REC ``FAILED → DONE`` and the job's counters
        moved from failed to done, in one transaction. False when the REC item is not FAILED."""
        if outcome.status != "DONE":
            return False
        now = self.clock()
        sets = {"status": "DONE", "key": outcome.key, "size": outcome.size, "sha256": outcome.sha256}
        sets.update({"source": outcome.source, "updated_at": utc_now_iso(now)})
        names = {f"#a{i}": name for i, name in enumerate(sets)}
        values = {f":a{i}": value for i, value in enumerate(sets.values())}
        values[":failed"] = "FAILED"
        assignments = ", ".join(f"#a{i} = :a{i}" for i in range(len(sets)))
        try:
            self.ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _to_ddb(
                                {"pk": f"JOB#{response_id}", "sk": recording_sk(outcome.call_id, outcome.stem)}
                            ),
                            "UpdateExpression": f"SET {assignments} REMOVE #err",
                            "ConditionExpression": "#a0 = :failed",
                            "ExpressionAttributeNames": {**names, "#err": "error"},
                            "ExpressionAttributeValues": _to_ddb(values),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _to_ddb(job_key(response_id)),
                            "UpdateExpression": "ADD recordings_done :one, recordings_failed :minus",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {":one": {"N": "1"}, ":minus": {"N": "-1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                return False
            raise
        job = self.get_job(response_id)
        if job and job.get("job_status") in (JobStatus.COMPLETED, JobStatus.PARTIAL):
            # The manifest named it a failure; the job may now be whole.
            final = outcome_of(job)
            self.write_final_manifest(job, final)
            if final != job.get("job_status"):
                self._set_status(response_id, final, JobStatus(str(job["job_status"])))
        logger.info("recording recorded FAILED was copied after all", extra={"response_id": response_id})
        return True

    def iter_recordings(self, response_id: str) -> Iterator[dict[str, Any]]:
        """Every REC item of a job, consistent read, page by page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :rec)",
            "ExpressionAttributeValues": {":pk": {"S": f"JOB#{response_id}"}, ":rec": {"S": "REC#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.ddb.query(**kwargs)
            for item in page.get("Items", []):
                yield _from_ddb(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------ completion

    def maybe_complete(self, response_id: str) -> bool:
        """Complete the job when every recording is accounted for: final manifest, then
        ``DOWNLOADING → COMPLETED``, or ``→ PARTIAL`` when recordings failed or bill entries were
        unusable (:func:`outcome_of`). True when this call completed it (metric JobsCompleted or
        JobsPartial, the latter alarmed)."""
        job = self.get_job(response_id)
        if not job or job.get("job_status") != JobStatus.DOWNLOADING or BILL_PROCESSED not in job:
            return False
        done = int(job.get("recordings_done", 0))
        failed = int(job.get("recordings_failed", 0))
        if done + failed < int(job["recordings_total"]):
            return False
        final = outcome_of(job)
        self.write_final_manifest(job, final)
        if not self._set_status(response_id, final, JobStatus.DOWNLOADING, {"completed_at": utc_now_iso(self.clock())}):
            return False  # a concurrent worker completed it (with the same manifest)
        metric = "JobsCompleted" if final is JobStatus.COMPLETED else "JobsPartial"
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        log = logger.info if final is JobStatus.COMPLETED else logger.warning
        log(
            "job completed" if final is JobStatus.COMPLETED else "job completed with failures",
            extra={"response_id": response_id, "recordings_done": done, "recordings_failed": failed},
        )
        return True

    # ------------------------------------------------------------------ manifest

    def read_manifest(self, response_id: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=layout.manifest_key(response_id))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        with body:
            loaded = json.load(body)
        return loaded if isinstance(loaded, dict) else None

    def write_manifest(self, response_id: str, document: Mapping[str, Any]) -> str:
        key = layout.manifest_key(response_id)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, ensure_ascii=False, indent=1).encode(),
            ContentType=MANIFEST_CONTENT_TYPE,
        )
        return key

    def manifest_base(self, job: Mapping[str, Any], status: JobStatus) -> dict[str, Any]:
        """Header fields every manifest carries, from the job item."""
        return {
            "responseId": job["response_id"] if "response_id" in job else str(job["pk"]).removeprefix("JOB#"),
            "tenant": job.get("tenant"),
            "accountId": job.get("account_id"),
            "beginTime": job.get("begin_time"),
            "endTime": job.get("end_time"),
            "dataType": job.get("data_type"),
            "billFileName": job.get("bill_file_name"),
            "status": status.value,
            "error": job.get("error"),
            "generatedAt": utc_now_iso(self.clock()),
            "counts": {name: int(job.get(name, 0)) for name in COUNTERS},
        }

    def write_final_manifest(self, job: Mapping[str, Any], status: JobStatus) -> str:
        """Rewrite the manifest with every recording and failure. Streams the REC items through a
        temporary file so a job with many recordings does not build its manifest in memory."""
        response_id = str(job["pk"]).removeprefix("JOB#")
        document = self.read_manifest(response_id) or {}
        document.update(self.manifest_base(job, status))
        document.pop("recordings", None)
        document.pop("failures", None)
        workdir = tempfile.mkdtemp(prefix="manifest-")
        try:
            recs_path, fails_path, out_path = (f"{workdir}/{n}" for n in ("recs", "fails", "out"))
            with open(recs_path, "w", encoding="utf-8") as recs, open(fails_path, "w", encoding="utf-8") as fails:
                n_recs = n_fails = 0
                for rec in self.iter_recordings(response_id):
                    if rec.get("status") == "DONE":
                        entry = {k: rec.get(k) for k in ("call_id", "file_name", "key", "size", "sha256", "source")}
                        recs.write(("\n " if n_recs == 0 else ",\n ") + json.dumps(entry, ensure_ascii=False))
                        n_recs += 1
                    else:
                        entry = {"call_id": rec.get("call_id"), "file_name": rec.get("file_name")}
                        entry["reason"] = rec.get("error")
                        fails.write(("\n " if n_fails == 0 else ",\n ") + json.dumps(entry, ensure_ascii=False))
                        n_fails += 1
            head = json.dumps(document, ensure_ascii=False, indent=1)
            with open(out_path, "w", encoding="utf-8") as out:
                out.write(head[: head.rfind("}")].rstrip())
                out.write(',\n "recordings": [')
                with open(recs_path, encoding="utf-8") as src:
                    shutil.copyfileobj(src, out)
                out.write('\n ],\n "failures": [')
                with open(fails_path, encoding="utf-8") as src:
                    shutil.copyfileobj(src, out)
                out.write("\n ]\n}\n")
            key = layout.manifest_key(response_id)
            self.s3.upload_file(out_path, self.bucket, key, ExtraArgs={"ContentType": MANIFEST_CONTENT_TYPE})
            return key
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
