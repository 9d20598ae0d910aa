"""``python -m bench.child TASK ARGS.json``: one measured client in its own process.

The orchestrator (``bench.__main__``) reads this process's peak RSS and CPU time with ``wait4``; the
task writes its own timings to ``args["result_file"]``. Imports stay minimal until the task starts,
so the process holds only what the measured code needs (as a Lambda sandbox would).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.awscount import RequestCounter

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _Context:
    """The Lambda context attributes Powertools and the handlers read."""

    def __init__(self, function_name: str, memory: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _sqs_event(records: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    now = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": r["message_id"],
                "receiptHandle": f"bench-{r['message_id']}",
                "body": r["body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for r in records
        ]
    }


def _import_handler(name: str) -> Any:
    """Import ``functions/<name>/app.py`` as ``app``, code directory first, then the layer (Lambda's
    ``/var/task`` and ``/opt/python``)."""
    import importlib

    sys.path[:0] = [str(ROOT / "functions" / name), str(ROOT / "layers" / "shared")]
    return importlib.import_module("app")


def task_download(args: dict[str, Any]) -> dict[str, Any]:
    """Invoke the download handler with SQS batches of ``batch_size`` records, one after another."""
    started = time.perf_counter()
    app = _import_handler("download")
    import_s = time.perf_counter() - started
    rss_after_import = _status("VmRSS")
    counter = count_requests(app)
    trace: list[tuple[float, int, str]] = []
    phases = _time_s3_phases(app.client("s3"), trace)
    if os.environ.get("BENCH_RSS_TRACE"):  # diagnostics: VmRSS every 50 ms
        import threading

        def sample() -> None:
            while True:
                trace.append((time.perf_counter(), _status("VmRSS") // 1024, ""))
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
    if os.environ.get("BENCH_TRANSFER_CONFIG"):  # experiments: other transfer settings, same code
        from exporter import recordings

        for key, value in json.loads(os.environ["BENCH_TRANSFER_CONFIG"]).items():
            setattr(recordings.TRANSFER_CONFIG, key, value)
    records = args["records"]
    size = int(args["batch_size"])
    durations = []
    failures: list[str] = []
    profiler = None
    if os.environ.get("BENCH_PROFILE"):  # diagnostics: cProfile of the main thread's invocations
        import cProfile

        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
    cpu_started = time.process_time()
    for first in range(0, len(records), size):
        event = _sqs_event(records[first : first + size], args["queue_arn"])
        context = _Context(args["function_name"], int(args["memory"]), int(args["timeout"]))
        t0 = time.perf_counter()
        try:
            result = app.lambda_handler(event, context)
            failures += [f["itemIdentifier"] for f in result["batchItemFailures"]]
        except Exception as exc:  # noqa: BLE001 - a whole batch failed: counted, reported
            failures += [r["message_id"] for r in records[first : first + size]]
            print(f"bench: batch failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        durations.append(time.perf_counter() - t0)
    invocations_cpu_s = time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    return {
        "import_s": import_s,
        "handler_s": sum(durations),
        "invocations_cpu_s": invocations_cpu_s,  # the invocations only: no interpreter start, no import
        "aws_requests": counter.summary(len(records)),
        "batches": len(durations),
        "batch_s": durations,
        "failures": failures,
        "rss_after_import_kib": rss_after_import,
        "s3_phases_s": phases,
        "rss_trace": trace if os.environ.get("BENCH_RSS_TRACE") else [],
    }


PRODUCT_SERVICES = ("s3", "dynamodb", "sqs", "secretsmanager", "ssm")
"""Every AWS service the download function calls (its IAM policy in template.yaml grants no other)."""


def count_requests(app: Any) -> RequestCounter:
    """Count the AWS requests of the download handler ``app`` (``functions/download/app.py``): on
    the product's shared clients (``exporter.aws.client``, cached per process, so these are the very
    objects the handler uses), each attributed to the SQS record whose ``record_handler`` made it
    (wrapped here, measurement only: ``lambda_handler`` looks the name up at each call)."""
    from exporter import aws

    counter = RequestCounter()
    for service in PRODUCT_SERVICES:
        counter.attach(aws.client(service).meta.events)
    original = app.record_handler

    def record_handler(record: Any) -> Any:
        with counter.tagged(record.message_id):
            return original(record)

    app.record_handler = record_handler
    return counter


def _time_s3_phases(s3: Any, trace: list[tuple[float, int, str]]) -> dict[str, float]:
    """Wall time the handler spends in the S3 transfer calls (staging upload, copy to the final key),
    summed over threads; measured by wrapping the cached client's methods, not by changing code."""
    import threading

    totals: dict[str, float] = {}
    lock = threading.Lock()
    for name in ("upload_fileobj", "copy", "upload_file"):
        original = getattr(s3, name)

        def timed(*a: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            started = time.perf_counter()
            trace.append((started, 0, f"start {_name}"))
            try:
                return _original(*a, **kw)
            finally:
                trace.append((time.perf_counter(), 0, f"end {_name}"))
                with lock:
                    totals[_name] = totals.get(_name, 0.0) + time.perf_counter() - started

        setattr(s3, name, timed)
    return totals


def task_naive_recordings(args: dict[str, Any]) -> dict[str, Any]:
    import boto3

    from bench import naive

    boto3.setup_default_session()  # the session naive's boto3.client(...) uses: counted before it exists
    counter = RequestCounter()
    counter.attach(boto3.DEFAULT_SESSION.events)
    started = time.perf_counter()
    cpu_started = time.process_time()
    copied = naive.copy_recordings(
        args["items"],
        base_url=args["base_url"],
        ca_bundle=args["ca_bundle"],
        ak=args["ak"],
        sk=args["sk"],
        endpoint_url=args["endpoint_url"],
        bucket=args["bucket"],
    )
    return {
        "seconds": time.perf_counter() - started,
        "bytes": copied,
        "invocations_cpu_s": time.process_time() - cpu_started,
        "aws_requests": counter.summary(len(args["items"])),
    }


class _ChunkReader:
    """A non-seekable file object over an iterator of chunks (the handler's streaming reader,
    without its SHA-256)."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self.done = False

    def read(self, size: int = -1) -> bytes:
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        while (size < 0 or have < size) and not self.done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.done = True
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if 0 <= size < len(data):
            data, self._pending = data[:size], data[size:]
        return data


def task_leg_download(args: dict[str, Any]) -> dict[str, Any]:
    """CC-FS side alone: ask for the URL, then stream the recording to nowhere (the handler's HTTP
    client, chunk size and TLS settings)."""
    from datetime import datetime

    from ccfs.client import CcfsClient, CcfsConfig
    from exporter.recordings import HTTP_CHUNK

    config = CcfsConfig(args["base_url"], args["ak"], args["sk"], ca_bundle=args["ca_bundle"], read_timeout=300)
    with CcfsClient(config) as client:
        begin = datetime.fromisoformat(args["begin"])
        end = datetime.fromisoformat(args["end"])
        [url] = client.get_record_file_urls(args["call_id"], begin, end)
        started = time.perf_counter()
        size = 0
        with client.http.stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(HTTP_CHUNK):
                size += len(chunk)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": size}


def task_leg_upload(args: dict[str, Any]) -> dict[str, Any]:
    """S3 side alone: ``size`` bytes from memory into moto with the handler's transfer settings."""
    import boto3
    from botocore.config import Config

    from exporter.recordings import TRANSFER_CONFIG

    block = os.urandom(MiB)
    total = int(args["size"])

    def chunks() -> Any:
        left = total
        while left > 0:
            piece = block if left >= MiB else block[:left]
            left -= len(piece)
            yield piece

    s3 = boto3.session.Session().client(
        "s3", config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    )
    started = time.perf_counter()
    s3.upload_fileobj(_ChunkReader(chunks()), args["bucket"], args["key"], Config=TRANSFER_CONFIG)
    seconds = time.perf_counter() - started
    size = s3.head_object(Bucket=args["bucket"], Key=args["key"])["ContentLength"]
    return {"seconds": seconds, "bytes": size}


TASKS = {
    "download": task_download,
    "naive-recordings": task_naive_recordings,
    "leg-download": task_leg_download,
    "leg-upload": task_leg_upload,
}


def main() -> int:
    task, args_path = sys.argv[1], sys.argv[2]
    args = json.loads(Path(args_path).read_text(encoding="utf-8"))
    result = TASKS[task](args)
    result["vm_hwm_kib"] = _status("VmHWM")
    Path(args["result_file"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
