"""Watching a running local stack from outside, as an operator would: the jobs table (windows and
jobs by status, without scanning), queue depths, the bucket's objects, the live :class:`Progress`
and when the run is complete; and, for a failed run, the state dump (``diagnose``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from local.stack.config import StackNames
from local.stack.report import human_size
from local.stack.verify import coverage_gap

__all__ = ["IN_FLIGHT", "TERMINAL", "Progress", "StackObserver"]

TERMINAL = frozenset({"COMPLETED", "PARTIAL", "FAILED", "SUPERSEDED", "UNSOLICITED"})
IN_FLIGHT = frozenset({"CLAIMED", "REQUESTED", "READY", "DOWNLOADING"})


@dataclass
class Progress:
    elapsed: float = 0.0
    jobs: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    cdr_rows: int = 0
    index_rows: int = 0
    recordings_total: int = 0
    recordings_done: int = 0
    recordings_failed: int = 0
    s3_objects: int = 0
    s3_bytes: int = 0
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # logical id -> (visible, in flight)
    dead_letter: set[str] = field(default_factory=set)  # which of ``queues`` are DLQs
    pending: list[str] = field(default_factory=list)  # why it is not complete yet
    complete: bool = False
    timed_out: bool = False

    def line(self) -> str:
        jobs = " ".join(f"{k.lower()}={v}" for k, v in sorted(self.jobs.items())) or "none"
        queued = sum(v + f for k, (v, f) in self.queues.items() if k not in self.dead_letter)
        dead = sum(v + f for k, (v, f) in self.queues.items() if k in self.dead_letter)
        return (
            f"[{self.elapsed:6.1f}s] jobs: {jobs} | windows {self.windows} | cdr rows {self.cdr_rows} | "
            f"recordings {self.recordings_done}/{self.recordings_total}"
            + (f" ({self.recordings_failed} failed)" if self.recordings_failed else "")
            + (f" | s3 {self.s3_objects} objects {human_size(self.s3_bytes)}" if self.s3_objects else "")
            + f" | queued {queued}"
            + (f" | DLQ {dead}" if dead else "")
        )


class StackObserver:
    """Reads the stack's state through boto3 clients of its moto (``client``) and the simulator's
    ground truth (``truth``). ``required`` is the stack's list of (tenant, begin, end) ranges that
    must be exported; it grows as backfills are sent."""

    def __init__(
        self,
        client: Callable[[str], Any],
        names: StackNames,
        tenants: list[str],
        required: list[tuple[str, str, str]],
        truth: Callable[[str | None, datetime, datetime], Any],
        run_dir: Callable[[], Path],
        elapsed: Callable[[], float],
    ) -> None:
        self._client = client
        self._names = names
        self._tenants = tenants
        self._required = required
        self._truth = truth
        self._run_dir_of = run_dir
        self._elapsed = elapsed
        self._polls = 0
        self._last_s3 = (0, 0)

    @property
    def _run_dir(self) -> Path:
        return self._run_dir_of()

    def scan_jobs_table(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        items: list[dict[str, Any]] = []
        paginator = self._client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=self._names.jobs_table):
            items.extend({k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"])
        return items

    def diagnose(self) -> Path:
        """Write what a failed run needs to be understood into ``run_dir/state`` (moto's state dies
        with the stack): every jobs-table item, the queues' depths, and each recording the truth
        lists for an unfinished job that has no outcome (no REC item), with the message ids,
        receive counts and messages of the log lines that name its call. Returns the directory."""
        out = self._run_dir / "state"
        out.mkdir(parents=True, exist_ok=True)
        items = self.scan_jobs_table()
        with open(out / "jobs-table.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, default=str) + "\n")
        (out / "queues.json").write_text(json.dumps(self.queue_depths(), indent=1), encoding="utf-8")
        pending = self.recordings_without_outcome(items)
        (out / "pending-recordings.json").write_text(json.dumps(pending, indent=1), encoding="utf-8")
        return out

    def recordings_without_outcome(self, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Recordings of unfinished jobs (truth for the job's window) that have no REC item, each
        with what the workers' logs say about its call (message id, receive count, message)."""
        items = self.scan_jobs_table() if items is None else items
        recorded = {(str(i["pk"]), str(i["sk"])) for i in items if str(i.get("sk", "")).startswith("REC#")}
        pending: list[dict[str, Any]] = []
        for job in items:
            if job.get("sk") != "JOB" or job.get("job_status") not in IN_FLIGHT or not job.get("begin_time"):
                continue
            tenant = str(job.get("tenant") or "_all")
            fmt = "%Y-%m-%d %H:%M:%S"
            truth = self._truth(
                None if tenant == "_all" else tenant,
                datetime.strptime(str(job["begin_time"]), fmt),
                datetime.strptime(str(job["end_time"]), fmt),
            )
            for rec in truth.recordings:
                stem = rec.file_name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
                if (str(job["pk"]), f"REC#{rec.call_id}#{stem}") not in recorded:
                    pending.append(
                        {
                            "response_id": job.get("response_id"),
                            "job_status": job.get("job_status"),
                            "call_id": rec.call_id,
                            "file_name": rec.file_name,
                        }
                    )
        wanted = {p["call_id"]: p for p in pending}
        for path in sorted((self._run_dir / "logs").glob("*.log")) if wanted else []:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if '"call_id"' not in line:
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    entry = wanted.get(str(record.get("call_id"))) if isinstance(record, dict) else None
                    if entry is not None:
                        entry.setdefault("log", []).append(
                            {
                                k: record.get(k)
                                for k in ("timestamp", "message", "message_id", "receive_count", "error", "reason")
                                if record.get(k) is not None
                            }
                            | {"file": path.name}
                        )
        return pending

    def list_objects(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        paginator = self._client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._names.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        out = {}
        sqs = self._client("sqs")
        for lid, url in self._names.queues.items():
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            visible = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs.get("ApproximateNumberOfMessagesDelayed", 0)
            )
            out[lid] = (visible, int(attrs["ApproximateNumberOfMessagesNotVisible"]))
        return out

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        paginator = self._client("dynamodb").get_paginator("query")
        for page in paginator.paginate(TableName=self._names.jobs_table, **kwargs):
            for item in page["Items"]:
                yield {k: deserializer.deserialize(v) for k, v in item.items()}

    def windows_and_jobs(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Window items (one key query per tenant) and job items (the ``by-status`` index, one
        query per status): what progress needs without scanning the table, whose REC items
        outnumber jobs a thousand to one in a big run (moto walks and serialises every one)."""
        windows: list[dict[str, Any]] = []
        for tenant in [*self._tenants, "_all"]:
            windows.extend(
                self._query(
                    KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"WINDOW#{tenant}"}}
                )
            )
        jobs: dict[str, dict[str, Any]] = {}
        for status in sorted(TERMINAL | IN_FLIGHT):
            for item in self._query(
                IndexName="by-status",
                KeyConditionExpression="job_status = :s",
                ExpressionAttributeValues={":s": {"S": status}},
            ):
                if item.get("sk") == "JOB" and str(item.get("pk", "")).startswith("JOB#"):
                    jobs[str(item["response_id"])] = item
        return windows, jobs

    def progress(self, with_s3: bool | None = False) -> Progress:
        """Where the run stands. ``with_s3`` also counts the bucket's objects (a full listing: only
        for a final report; ``None`` = every 3rd call)."""
        windows, jobs = self.windows_and_jobs()
        p = Progress(elapsed=self._elapsed())
        p.windows = len(windows)
        for job in jobs.values():
            p.jobs[str(job.get("job_status"))] += 1
            if job.get("job_status") in ("COMPLETED", "PARTIAL", "DOWNLOADING", "READY"):
                p.cdr_rows += int(job.get("cdr_rows") or 0)
                p.index_rows += int(job.get("index_rows") or 0)
                p.recordings_total += int(job.get("recordings_total") or 0)
                p.recordings_done += int(job.get("recordings_done") or 0)
                p.recordings_failed += int(job.get("recordings_failed") or 0)
        if with_s3 is None:
            self._polls += 1
            with_s3 = self._polls % 3 == 1
        if with_s3:
            for obj in self.list_objects():
                p.s3_objects += 1
                p.s3_bytes += int(obj["Size"])
            self._last_s3 = (p.s3_objects, p.s3_bytes)
        else:
            p.s3_objects, p.s3_bytes = self._last_s3
        p.queues = self.queue_depths()
        p.dead_letter = set(self._names.dlqs)
        p.pending = self._pending(windows, jobs, p.queues)
        p.complete = not p.pending
        return p

    def _pending(
        self, windows: list[dict[str, Any]], jobs: dict[str, dict[str, Any]], queues: dict[str, tuple[int, int]]
    ) -> list[str]:
        pending: list[str] = []
        by_tenant: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for w in windows:
            begin, _, end = str(w["sk"]).partition("|")
            by_tenant.setdefault(str(w["pk"])[len("WINDOW#") :], []).append((begin, end, w))
        for tenant, begin, end in self._required:
            gap = coverage_gap(by_tenant.get(tenant, []), begin, end)
            if gap:
                pending.append(f"{tenant}: no window yet from {gap}")
        for w in windows:
            status = w.get("job_status")
            job = jobs.get(str(w.get("response_id") or ""))
            if status == "CLAIMED" or job is None:
                pending.append(f"window {w['pk']} {w['sk']} claimed, not requested")
            elif job.get("job_status") not in TERMINAL:
                pending.append(f"job {job['response_id']} {job.get('job_status')}")
        for job in jobs.values():
            if job.get("job_status") in IN_FLIGHT:
                text = f"job {job['response_id']} {job.get('job_status')}"
                if text not in pending:
                    pending.append(text)
        if not jobs and not self._required:
            pending.append("no job yet")
        for lid, (visible, in_flight) in queues.items():
            if lid in self._names.consumed and visible + in_flight:
                pending.append(f"{lid}: {visible} queued, {in_flight} in flight")
        return pending
