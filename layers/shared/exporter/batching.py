"""Powertools Batch on a bounded thread pool, with Metrics and Logger made safe for its workers.

Recording copies are I/O-bound (two CC-FS round trips, object storage, S3, DynamoDB), so the
download function processes a batch of recordings on up to ``RECORDING_CONCURRENCY`` threads. The
bound is also what CC-FS sees from one instance, so its flow control holds.

- Results and ``batchItemFailures`` stay Powertools' own (an entirely failed batch is reported,
  not raised): each worker runs the processor's ``_process_record``.
- Powertools Metrics is not thread-safe: worker threads buffer the metrics their record adds and
  the main thread adds them (``ThreadedMetrics``).
- Log keys in workers are the Logger's thread-safe keys (``log_keys``), cleared after each record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from exporter.aws import logger, metrics

__all__ = ["ConcurrentBatchProcessor", "ThreadedMetrics", "log_keys", "threaded_metrics"]


class _WorkerState(threading.local):
    """Per worker thread: the metrics its record added (None on the main thread)."""

    metrics: list[dict[str, Any]] | None = None


class ThreadedMetrics:
    """Routes ``metrics.add_metric`` from worker threads into their buffers; the main thread keeps
    calling Powertools directly. Installed once per process on the shared ``metrics`` object."""

    def __init__(self, add_metric: Any) -> None:
        self._add_metric = add_metric
        self.worker = _WorkerState()

    def add_metric(self, **kwargs: Any) -> None:
        buffer = self.worker.metrics
        if buffer is None:
            self._add_metric(**kwargs)
        else:
            buffer.append(kwargs)

    def replay(self, buffered: list[dict[str, Any]]) -> None:
        for kwargs in buffered:
            self._add_metric(**kwargs)

    def in_worker(self) -> bool:
        return self.worker.metrics is not None


def threaded_metrics() -> ThreadedMetrics:
    """The process's router on ``exporter.aws.metrics`` (installed on the first call)."""
    existing: ThreadedMetrics | None = getattr(metrics, "_aicc_threaded", None)
    if existing is not None:  # the handler module was imported again (tests): keep the one router
        return existing
    router = ThreadedMetrics(metrics.add_metric)
    metrics.add_metric = router.add_metric  # type: ignore[method-assign,assignment]
    metrics._aicc_threaded = router  # type: ignore[attr-defined]
    return router


@contextmanager
def log_keys(**keys: Any) -> Iterator[None]:
    """``logger.append_context_keys`` on the main thread; the thread-safe keys in a worker."""
    if not threaded_metrics().in_worker():
        with logger.append_context_keys(**keys):
            yield
        return
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(keys)


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' SQS BatchProcessor with ``process()`` run on a bounded thread pool.

    A BaseException (a crash, the runtime's timeout) propagates from the main thread and cancels the
    records not started yet. ``max_workers`` ≤ 1 is Powertools' own sequential ``process()``.
    """

    def __init__(self, max_workers: int) -> None:
        # A batch whose every record failed is reported like any partial failure, not raised (a
        # raised batch counts as a function error and trips the Errors alarm).
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.max_workers = max_workers
        self._router = threaded_metrics()

    def process(self) -> list[tuple[Any, ...]]:
        records = list(self.records)
        if self.max_workers <= 1 or len(records) <= 1:
            return super().process()
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(records)), thread_name_prefix="record")
        try:
            futures = [pool.submit(self._in_worker, record) for record in records]
            results: list[tuple[Any, ...]] = []
            for future in futures:
                result, buffered = future.result()
                self._router.replay(buffered)
                results.append(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        # Workers record failures as they finish; report them in the batch's order, as the
        # sequential processor does (a stable batchItemFailures list, whatever the threads' timing).
        order = {record.get("messageId"): i for i, record in enumerate(records)}
        self.fail_messages.sort(key=lambda failed: order.get(getattr(failed, "message_id", None), len(order)))
        return results

    def _in_worker(self, record: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        buffered: list[dict[str, Any]] = []
        self._router.worker.metrics = buffered
        try:
            return self._process_record(record), buffered
        finally:
            self._router.worker.metrics = None
            logger.thread_safe_clear_keys()
