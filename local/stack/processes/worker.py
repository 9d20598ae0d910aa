"""``python -m local.stack.processes.worker``: one Lambda "instance" fed by an SQS poller or a schedule.

SQS mode emulates an event source mapping (ESM) consumer: ReceiveMessage (batch size, batching
window) -> an SQS event -> the handler -> delete every record not listed in ``batchItemFailures``
(all of them when the mapping lacks ReportBatchItemFailures and the handler returned); delete
nothing when the handler raised or timed out, or when ``batchItemFailures`` is malformed, as
Lambda does. Redrive to the DLQ is SQS's (moto's) job: it moves a message on the receive after its
``maxReceiveCount``-th.

While a batch is being handled the poller keeps its messages invisible (ChangeMessageVisibility
heartbeats). In AWS the template's "visibility timeout >= 6x function timeout" rule guarantees no
redelivery during processing; the local stack scales the visibility timeout down so retries come
within seconds, and the heartbeat keeps that guarantee.

Schedule mode fires the function every ``--schedule-interval`` seconds with an EventBridge
"Scheduled Event" (or the schedule target's Input); a failed tick goes to the function's
OnFailure destination queue as a Lambda destination record (MaximumRetryAttempts 0 in the
template). Ticks are skipped while ``--pause-file`` exists.

Crash injection (``--crash-file``, written by ``LocalStack.set_worker_crash``): the first worker to
claim the file waits for a batch of more than ``after_records`` records (smaller batches pass
untouched), invokes the handler with only the first ``after_records`` of it and raises instead of
returning, so the records handled just before the "crash" come back with the rest of the batch:
always a crash in the middle of a batch, however the receives happened to group the messages.
The handler code is not changed. Poisoned records (``Poison``) die on every delivery.

A timed-out invocation ends the process after reporting, like a Lambda sandbox being reset; the
stack starts a fresh worker.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local.stack.processes.procs import watch_parent, write_ready

_stop = threading.Event()


class InjectedCrash(RuntimeError):
    """Raised by the local stack's crash switch, never by product code."""


class CrashSwitch:
    def __init__(self, path: str | None, worker: str) -> None:
        self.path = Path(path) if path else None
        self.worker = worker
        self.armed: dict[str, Any] | None = None
        self.seen = 0

    def _claim(self) -> None:
        if self.path is None or self.armed is not None or not self.path.exists():
            return
        claimed = self.path.with_name(f"{self.path.stem}.claimed-{os.getpid()}.json")
        try:
            os.rename(self.path, claimed)  # atomic: exactly one worker wins
        except OSError:
            return
        self.armed = json.loads(claimed.read_text(encoding="utf-8"))
        self.armed["claimed"] = str(claimed)
        self.seen = 0

    def split(self, count: int) -> int | None:
        """How many records of a batch of ``count`` to hand over before crashing (None: no crash)."""
        self._claim()
        if self.armed is None:
            return None
        limit = int(self.armed["after_records"])
        if count <= limit:  # too small to crash in the middle of: wait for a larger batch
            self.seen += count
            return None
        return limit

    def fired(self, handed: int, batch: int) -> None:
        assert self.armed is not None and self.path is not None
        report = {**self.armed, "worker": self.worker, "pid": os.getpid(), "handed": handed, "batch": batch}
        report["passed_before"] = self.seen  # records of smaller batches let through before it
        fired = self.path.with_name(f"{self.path.stem}.fired.json")
        write_ready(fired, report)
        Path(self.armed["claimed"]).unlink(missing_ok=True)
        self.armed = None


class Poison:
    """Deliveries that always die (``--poison-file``, written by ``LocalStack.set_poison``): a
    record whose body contains the file's ``match`` text is never handed to the handler; its
    delivery "crashes" (as a timeout or running out of memory would end it) while the batch's
    other records are handled normally. The ESM leaves it on the queue, so SQS moves it to the DLQ
    after ``maxReceiveCount`` deliveries."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def split(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(healthy, poisoned)`` records."""
        if self.path is None or not self.path.exists():
            return records, []
        match = str(json.loads(self.path.read_text(encoding="utf-8"))["match"])
        poisoned = [r for r in records if match in r["body"]]
        return [r for r in records if match not in r["body"]], poisoned


# How long a message being handled stays invisible per heartbeat. The queues' (local) visibility
# timeout is a few seconds so that retries come quickly; in flight, a message must not come back
# while its first delivery still runs (AWS guarantees that through the 6x rule). Extending by
# only that timeout every 2 s was not enough when moto was saturated (a 10,000-call chaos run):
# a late heartbeat let a message be redelivered during its first delivery.
INFLIGHT_SECONDS = 120
HEARTBEAT_SECONDS = 10.0


class Heartbeat:
    """Keeps received messages invisible while they are being handled; ``release`` gives the ones
    left on the queue (failed records) back the queue's visibility timeout, the retry delay."""

    def __init__(self, sqs: Any, queue_url: str, visibility: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.retry_delay = max(1, visibility)
        self.inflight = max(self.retry_delay, INFLIGHT_SECONDS)
        self.handles: list[str] = []
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, handles: list[str]) -> None:
        with self._lock:
            self.handles.extend(handles)
        self._change(handles, self.inflight)  # at once: the receive gave them only the retry delay
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            with self._lock:
                handles = list(self.handles)
            self._change(handles, self.inflight)

    def _change(self, handles: list[str], seconds: int) -> None:
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
                for i, h in enumerate(handles[start : start + 10])
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat only risks a redelivery
                sys.stderr.write(f"heartbeat failed: {exc}\n")

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def release(self, handles: list[str]) -> None:
        """The records the invocation did not finish: visible again after the retry delay."""
        self._change(handles, self.retry_delay)


def _failed_ids(invocation: Any, ids: list[str], report_failures: bool) -> tuple[set[str], str]:
    """Which records the ESM leaves on the queue, and why (for the log)."""
    if invocation.error is not None:
        return set(ids), "error"
    if not report_failures:
        return set(), "ok"
    result = invocation.result
    if result is None or (isinstance(result, dict) and not result.get("batchItemFailures")):
        return set(), "ok"
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if not isinstance(failures, list):
        return set(ids), "malformed batchItemFailures"
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in ids:
            return set(ids), f"invalid itemIdentifier {identifier!r}"
        failed.add(identifier)
    return failed, "partial"


def run_sqs(args: argparse.Namespace, runtime: Any, sqs: Any) -> None:
    from local.stack.processes.events import sqs_event
    from local.stack.processes.runtime import log_line

    crash = CrashSwitch(args.crash_file, args.name)
    poison = Poison(args.poison_file)
    visibility = int(
        sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
            "VisibilityTimeout"
        ]
    )
    while not _stop.is_set():
        try:
            messages = sqs.receive_message(
                QueueUrl=args.queue_url,
                MaxNumberOfMessages=min(10, args.batch_size),
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        except Exception as exc:  # noqa: BLE001 - moto going away at shutdown, or a blip
            if _stop.is_set():
                break
            sys.stderr.write(f"receive failed: {exc}\n")
            time.sleep(0.5)
            continue
        if not messages:
            continue
        heartbeat = Heartbeat(sqs, args.queue_url, visibility)
        heartbeat.add([m["ReceiptHandle"] for m in messages])
        deadline = time.monotonic() + args.batching_window
        while len(messages) < args.batch_size and time.monotonic() < deadline and not _stop.is_set():
            left = deadline - time.monotonic()
            more = sqs.receive_message(
                QueueUrl=args.queue_url,
                MaxNumberOfMessages=min(10, args.batch_size - len(messages)),
                WaitTimeSeconds=max(0, min(1, int(left))),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if more:
                heartbeat.add([m["ReceiptHandle"] for m in more])
                messages.extend(more)
            elif left < 1:  # a long poll takes whole seconds: poll the last one every 0.2 s, not in a busy loop
                _stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        event = sqs_event(messages, args.queue_arn)
        healthy, poisoned = poison.split(event["Records"])
        event["Records"] = healthy
        ids = [r["messageId"] for r in healthy]
        handed = crash.split(len(healthy))
        if not healthy:
            invocation = _crashed(runtime, 0, len(poisoned))
        elif handed is None:
            invocation = runtime.invoke(event)
        else:
            if handed:
                runtime.invoke({"Records": event["Records"][:handed]})
            invocation = _crashed(runtime, handed, len(messages))
            crash.fired(handed, len(messages))
        heartbeat.stop()
        failed, outcome = _failed_ids(invocation, ids, args.report_failures)
        if poisoned:
            failed |= {r["messageId"] for r in poisoned}
            ids += [r["messageId"] for r in poisoned]
            outcome += f" + {len(poisoned)} poisoned"
        done = [m for m in messages if m["MessageId"] not in failed]
        heartbeat.release([m["ReceiptHandle"] for m in messages if m["MessageId"] in failed])
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=args.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        log_line(
            event="invoke",
            worker=args.name,
            records=len(ids),
            failed=len(failed),
            outcome=outcome,
            error=None if invocation.error is None else f"{type(invocation.error).__name__}: {invocation.error}",
            ms=round(invocation.duration_ms, 1),
            receive_counts=sorted(int(m["Attributes"].get("ApproximateReceiveCount", 0)) for m in messages),
        )
        if invocation.timed_out:
            raise SystemExit(75)  # sandbox reset: the stack starts a fresh worker


def _crashed(runtime: Any, handed: int, batch: int) -> Any:
    from local.stack.processes.runtime import Invocation

    error = InjectedCrash(f"local stack: injected crash after {handed} of {batch} records")
    from local.stack.processes.runtime import emit

    emit(json.dumps({"errorMessage": str(error), "errorType": "InjectedCrash"}))
    return Invocation(request_id="injected-crash", error=error)


def run_schedule(args: argparse.Namespace, runtime: Any, sqs: Any) -> None:
    from local.stack.processes.events import failure_destination_record, scheduled_event
    from local.stack.processes.runtime import log_line

    payload = json.loads(args.payload) if args.payload else None
    pause = Path(args.pause_file) if args.pause_file else None
    next_tick = time.monotonic()
    while not _stop.is_set():
        if _stop.wait(max(0.0, next_tick - time.monotonic())):
            break
        next_tick = max(next_tick + args.schedule_interval, time.monotonic())
        if pause is not None and pause.exists():
            continue
        event = payload if payload is not None else scheduled_event(args.rule_arn)
        invocation = runtime.invoke(event)
        if invocation.error is not None and args.on_failure_queue_url:
            record = failure_destination_record(args.function, event, invocation.error, invocation.request_id)
            sqs.send_message(QueueUrl=args.on_failure_queue_url, MessageBody=json.dumps(record))
        log_line(
            event="tick",
            worker=args.name,
            error=None if invocation.error is None else f"{type(invocation.error).__name__}: {invocation.error}",
            ms=round(invocation.duration_ms, 1),
        )
        if invocation.timed_out:
            raise SystemExit(75)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local.stack.processes.worker")
    p.add_argument("--name", required=True)
    p.add_argument("--function", required=True, help="function name (the template's logical id)")
    p.add_argument("--code", required=True, help="code directory (CodeUri)")
    p.add_argument("--handler", default="app.lambda_handler")
    p.add_argument("--layer", action="append", default=[])
    p.add_argument("--timeout", type=int, default=3)
    p.add_argument("--memory", type=int, default=128)
    p.add_argument("--patch", default="{}", help="JSON {module.NAME: value} applied after the import")
    p.add_argument("--queue-url")
    p.add_argument("--queue-arn")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--batching-window", type=float, default=0.0)
    p.add_argument("--report-failures", action="store_true")
    p.add_argument("--crash-file")
    p.add_argument("--poison-file")
    p.add_argument("--schedule-interval", type=float)
    p.add_argument("--rule-arn", default="")
    p.add_argument("--payload")
    p.add_argument("--pause-file")
    p.add_argument("--on-failure-queue-url")
    p.add_argument("--ready-file", required=True)
    args = p.parse_args(argv)
    if not args.queue_url and not args.schedule_interval:
        p.error("either --queue-url or --schedule-interval")

    signal.signal(signal.SIGTERM, lambda *_: _stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent()

    import boto3
    from botocore.config import Config

    from local.stack.processes.runtime import FunctionRuntime, log_line

    sqs = boto3.session.Session().client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    runtime = FunctionRuntime(
        args.function, args.code, args.handler, args.layer, args.timeout, args.memory, json.loads(args.patch)
    )
    log_line(
        event="ready",
        worker=args.name,
        function=args.function,
        init_ms=round(runtime.init_ms, 1),
        patched=runtime.patched,
    )
    write_ready(args.ready_file, {"pid": os.getpid(), "name": args.name})
    if args.schedule_interval:
        run_schedule(args, runtime, sqs)
    else:
        run_sqs(args, runtime, sqs)
    log_line(event="stopped", worker=args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
