"""The AWS requests a measured process makes, counted by service and operation (issue 13: "≤ 4 AWS
requests per recording, counted by the bench, not estimated").

Counted in the measured process itself, by botocore event handlers on its clients: for the
exporter, the product's shared clients (``exporter.aws.client``, the only way the download function
makes clients); for the naive script, boto3's default session, before its client exists. Not at the
bench's moto server: that server also answers the orchestrator (seeding the job, the bill step,
draining the queue, the naive script), cannot tell which record a request belonged to, and would
not exist against real AWS. Here each request is attributed to the SQS record being processed on
that thread, so a recording's own requests and a job's once-only completion are told apart.

- ``before-call`` fires once per API call: the figure. ``before-send`` fires once per HTTP attempt
  (retries included, what AWS bills): ``retries`` is the difference.
- Calls on threads that are not processing a record (the handler's warm-up, s3transfer's worker
  threads of a multipart upload) are counted under ``outside_records``.
- Secrets Manager and SSM reads are cached per sandbox (``SECRET_MAX_AGE`` 300 s, ``CA_MAX_AGE``
  3600 s in ``exporter.ccfs_factory``): reported as ``per_sandbox``, not per recording.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PER_SANDBOX_SERVICES = ("secretsmanager", "ssm")


class RequestCounter:
    """Thread-safe counts of API calls (and HTTP attempts) by ``service:Operation``, per tag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.by_tag: dict[str, Counter[str]] = {}
        self.outside: Counter[str] = Counter()
        self._id = f"bench-awscount-{id(self)}"

    def attach(self, events: Any) -> None:
        """Count on an event emitter: a client's ``meta.events``, or a session's ``events`` (every
        client the session creates afterwards copies its handlers)."""
        events.register("before-call", self._on_call, unique_id=f"{self._id}-call")
        events.register("before-send", self._on_send, unique_id=f"{self._id}-send")

    def detach(self, events: Any) -> None:
        events.unregister("before-call", unique_id=f"{self._id}-call")
        events.unregister("before-send", unique_id=f"{self._id}-send")

    @contextmanager
    def tagged(self, tag: str) -> Iterator[None]:
        """Attribute the calls made on this thread to ``tag`` (an SQS message id)."""
        previous = getattr(self._local, "tag", None)
        self._local.tag = tag
        with self._lock:
            self.by_tag.setdefault(tag, Counter())
        try:
            yield
        finally:
            self._local.tag = previous

    def _on_call(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}"
        tag = getattr(self._local, "tag", None)
        with self._lock:
            self.calls[name] += 1
            (self.by_tag[tag] if tag is not None else self.outside)[name] += 1

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        # before-send.<service id>.<Operation>
        parts = event_name.split(".")
        name = f"{parts[1]}:{parts[2]}" if len(parts) >= 3 else event_name
        with self._lock:
            self.attempts[name] += 1

    def summary(self, recordings: int) -> dict[str, Any]:
        """What the bench reports for ``recordings`` records processed (see the module docstring).

        ``per_recording`` is the happy path: the requests of the most common record (the job's
        last recording also completes the job; a duplicate or a retry differs too: each group of
        records with the same requests is listed under ``records``). ``per_recording_mean`` divides
        every request but the per-sandbox reads by ``recordings``. Without tagged records (the naive
        script), ``per_recording`` is that mean."""
        with self._lock:
            calls = Counter(self.calls)
            tags = [Counter({op: n for op, n in ops.items() if not _per_sandbox(op)}) for ops in self.by_tag.values()]
            outside = dict(sorted(self.outside.items()))
            attempts = sum(self.attempts.values())
        sandbox = {op: n for op, n in sorted(calls.items()) if _per_sandbox(op)}
        work = {op: n for op, n in sorted(calls.items()) if not _per_sandbox(op)}
        groups = Counter(tuple(sorted(ops.items())) for ops in tags)
        records = [
            {"records": count, "requests": sum(n for _, n in ops), "operations": dict(ops)}
            for ops, count in groups.most_common()
        ]
        mean = round(sum(work.values()) / recordings, 3) if recordings else 0.0
        return {
            "counted": "in the measured process: botocore before-call (API calls) and before-send "
            "(HTTP attempts) on its boto3 clients",
            "per_recording": records[0]["requests"] if records else mean,
            "per_recording_operations": records[0]["operations"] if records else {},
            "per_recording_mean": mean,
            "per_recording_mean_by_operation": {op: round(n / recordings, 3) for op, n in work.items()}
            if recordings
            else {},
            "records": records,
            "outside_records": outside,
            "per_sandbox": sandbox,
            "by_operation": dict(sorted(calls.items())),
            "http_attempts": attempts,
            "retries": attempts - sum(calls.values()),
        }


def _per_sandbox(operation: str) -> bool:
    return operation.split(":", 1)[0] in PER_SANDBOX_SERVICES
