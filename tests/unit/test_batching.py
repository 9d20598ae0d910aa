"""exporter.batching: Powertools Batch on a bounded thread pool (the download function's recordings)."""

from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from exporter.aws import logger, metrics
from exporter.batching import ConcurrentBatchProcessor, log_keys, threaded_metrics
from tests.conftest import FakeLambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sqs_event(count: int) -> dict[str, Any]:
    template = json.loads((EVENTS / "recording_message.json").read_text())["Records"][0]
    records = []
    for i in range(count):
        record = copy.deepcopy(template)
        record["messageId"] = f"m{i:03d}"
        record["body"] = json.dumps({"n": i})
        records.append(record)
    return {"Records": records}


class Gauge:
    """How many records run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.threads: set[str] = set()

    def __enter__(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.current_thread().name)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.active -= 1


@pytest.fixture(autouse=True)
def clean_metrics() -> Any:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def test_records_run_concurrently_up_to_the_bound() -> None:
    gauge = Gauge()
    barrier = threading.Barrier(4, timeout=10)  # only passes if 4 records are in flight together

    def handler(record: SQSRecord) -> int:
        with gauge:
            n = int(json.loads(record.body)["n"])
            if n < 4:
                barrier.wait()
            return n

    processor = ConcurrentBatchProcessor(max_workers=4)
    result = process_partial_response(
        event=sqs_event(12), record_handler=handler, processor=processor, context=FakeLambdaContext()
    )
    assert result == {"batchItemFailures": []}
    assert gauge.peak == 4 and len(gauge.threads) == 4
    assert all(name.startswith("record") for name in gauge.threads)
    assert sorted(r["messageId"] for r in processor.success_messages) == [f"m{i:03d}" for i in range(12)]


def test_failed_records_are_reported_one_by_one() -> None:
    def handler(record: SQSRecord) -> int:
        n = int(json.loads(record.body)["n"])
        if n % 3 == 0:
            raise RuntimeError(f"record {n} broke")
        return n

    result = process_partial_response(
        event=sqs_event(7), record_handler=handler, processor=ConcurrentBatchProcessor(3), context=FakeLambdaContext()
    )
    assert result == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m000", "m003", "m006")]}


def test_a_batch_where_every_record_failed_is_reported_not_raised() -> None:
    """A raised batch is a function error (the Errors alarm): an entirely failed batch is reported
    record by record like any partial failure, and SQS retries each."""

    def handler(record: SQSRecord) -> int:
        raise RuntimeError("all broken")

    result = process_partial_response(
        event=sqs_event(3),
        record_handler=handler,
        processor=ConcurrentBatchProcessor(3),
        context=FakeLambdaContext(),
    )
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["m000", "m001", "m002"]


def test_metrics_added_in_workers_reach_powertools_once_each() -> None:
    threaded_metrics()  # installed by the download function at import; idempotent

    def handler(record: SQSRecord) -> int:
        metrics.add_metric(name="RecordingsCopied", unit=MetricUnit.Count, value=1)
        return 0

    process_partial_response(
        event=sqs_event(9), record_handler=handler, processor=ConcurrentBatchProcessor(4), context=FakeLambdaContext()
    )
    metrics.add_metric(name="MainThread", unit=MetricUnit.Count, value=1)  # the main thread is not buffered
    emitted = metrics.serialize_metric_set()
    assert emitted["RecordingsCopied"] == [1.0] * 9
    assert emitted["MainThread"] == [1.0]
    assert threaded_metrics() is threaded_metrics()  # one router per process


def test_log_keys_of_a_worker_never_reach_another_record() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def handler(record: SQSRecord) -> int:
        n = int(json.loads(record.body)["n"])
        with log_keys(call_id=f"call-{n}"):
            barrier.wait()  # both records hold their keys at the same time
            logger.info("copying")
        logger.info("after")
        return n

    out = io.StringIO()
    previous = logger.registered_handler.setStream(out)  # the JSON lines exactly as Lambda gets them
    try:
        process_partial_response(
            event=sqs_event(2),
            record_handler=handler,
            processor=ConcurrentBatchProcessor(2),
            context=FakeLambdaContext(),
        )
    finally:
        logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    copying = sorted(line.get("call_id") for line in lines if line["message"] == "copying")
    assert copying == ["call-0", "call-1"]
    assert all("call_id" not in line for line in lines if line["message"] == "after")


def test_one_worker_is_powertools_sequential_process() -> None:
    seen: list[str] = []

    def handler(record: SQSRecord) -> int:
        seen.append(threading.current_thread().name)
        return 0

    process_partial_response(
        event=sqs_event(3), record_handler=handler, processor=ConcurrentBatchProcessor(1), context=FakeLambdaContext()
    )
    assert seen == [threading.main_thread().name] * 3
