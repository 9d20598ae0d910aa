"""Callback load: signed CC-FS callbacks through the local stack's API Gateway front.

``local/stack/processes/front.py`` turns each HTTP request into an API Gateway REST proxy event for the
callback function, one invocation at a time (one warm Lambda sandbox). It runs here against a bench
moto server holding the template's resources (no pollers, no schedule: only the callback path is
measured). Half the requests are the first callback of a job seeded as ``REQUESTED`` (→ ``READY``
+ one BillQueue message), half repeat an earlier one (CC-FS resends callbacks), sent by
``senders`` concurrent keep-alive clients.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.harness import ROOT, TENANT, Aws, cpu_seconds, log, new_response_id

__all__ = ["run_load"]


def _start_front(aws: Aws, run_dir: Path) -> tuple[Any, str, str]:
    """``python -m local.stack.processes.front`` for the template's callback route, against ``aws``: the
    process, its local URL and the public URL it stands for (API Gateway's domain: the function
    sees that ``Host``, so a callback is signed for it, as CC-FS signs for the URL it was given)."""
    from local.stack.processes.procs import spawn

    model = aws.template.model
    route = model.routes[0]
    spec = model.functions[route.function]
    args = ["--function", f"aicc-bench-{route.function}", "--code", spec.code_uri, "--handler", spec.handler]
    args += ["--timeout", str(spec.timeout), "--memory", str(spec.memory)]
    for layer in spec.layers:
        args += ["--layer", layer]
    args += ["--stage", route.stage, "--path", route.path, "--method", route.method]
    env = aws.function_env(route.function)
    env["PYTHONPATH"] = str(ROOT)
    front = spawn("front", "local.stack.processes.front", args, env=env, run_dir=run_dir)
    ready = front.wait_ready(60)
    return front, ready["url"], ready["public_url"]


def _seed_requested(aws: Aws, response_ids: list[str]) -> None:
    from boto3.dynamodb.types import TypeSerializer

    from exporter.jobs.items import NewJob, WindowClaim
    from exporter.planner import Window

    serializer = TypeSerializer()
    now = datetime.now(UTC)
    begin = datetime(2026, 1, 1)
    ddb = aws.client("dynamodb")
    requests = []
    for i, rid in enumerate(response_ids):
        start = begin + timedelta(hours=i)
        claim = WindowClaim(
            TENANT, Window(start, start + timedelta(minutes=59, seconds=59)), "call_record", TENANT, "schedule"
        )
        item = NewJob(rid, claim, 1).item(now, 365)
        requests.append({"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}})
    for first in range(0, len(requests), 25):
        pending = {aws.jobs_table: requests[first : first + 25]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _report_durations(log_path: Path) -> list[float]:
    """The function's own Duration per invocation, from the front's Lambda-style REPORT lines."""
    out = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("REPORT RequestId:") and "Duration: " in line:
            out.append(float(line.split("Duration: ", 1)[1].split(" ", 1)[0]))
    return sorted(out[1:])  # the first one is the cold invocation


def _callback(public_url: str, ak: str, sk: str, rid: str) -> tuple[bytes, dict[str, str]]:
    from ccfs.auth import sign

    body = json.dumps(
        {
            "request": {"version": "2.0"},
            "msgBody": {
                "responseId": rid,
                "billFileName": f"{datetime.now(UTC):%Y%m%d}_{rid}.zip",
                "accountId": TENANT,
            },
        },
        separators=(",", ":"),
    ).encode()
    parts = urlsplit(public_url)
    headers = {"Content-Type": "application/json;charset=UTF-8", "Content-Length": str(len(body)), "Host": parts.netloc}
    headers["Authorization"] = sign(ak, sk, "POST", parts.path, headers, body, timestamp=datetime.now(UTC))
    return body, headers


def run_load(total: int, senders: int, *, run_dir: Path, template: Any, sim: Any) -> dict[str, Any]:
    import httpx

    new = total // 2
    rids = [new_response_id() for _ in range(new)]
    plan = [(rid, True) for rid in rids] + [(rids[i % new], False) for i in range(total - new)]
    random.Random(7).shuffle(plan)
    seen: set[str] = set()
    for index, (rid, _) in enumerate(plan):  # a repeat must come after its first send in the plan
        if rid not in seen:
            plan[index] = (rid, True)
            seen.add(rid)
        else:
            plan[index] = (rid, False)

    aws = Aws.start(run_dir, "moto-callbacks", template, sim)
    front = None
    try:
        _seed_requested(aws, rids)
        front, url, public_url = _start_front(aws, run_dir)
        log(f"callbacks: {total} signed requests ({new} first, {total - new} repeats), {senders} senders -> {url}")
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        cursor = iter(range(len(plan)))

        def sender() -> None:
            with httpx.Client(timeout=30) as client:
                while True:
                    with lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    body, headers = _callback(public_url, sim.ak, sim.sk, plan[index][0])
                    started = time.perf_counter()
                    try:
                        reply = client.post(url, content=body, headers=headers)
                        ok = reply.status_code == 200 and reply.json().get("resultCode") == "0"
                        problem = "" if ok else f"HTTP {reply.status_code} {reply.text[:80]}"
                    except httpx.HTTPError as exc:
                        problem = type(exc).__name__
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        if problem:
                            errors.append(problem)

        front_cpu0, moto_cpu0 = cpu_seconds(front.pid), cpu_seconds(aws.moto.pid)
        started = time.perf_counter()
        threads = [threading.Thread(target=sender, name=f"sender-{i}") for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        front_cpu = cpu_seconds(front.pid) - front_cpu0
        moto_cpu = cpu_seconds(aws.moto.pid) - moto_cpu0

        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        jobs = []
        for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=aws.jobs_table):
            jobs += [{k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        ready = sum(1 for j in jobs if j.get("job_status") == "READY" and j.get("bill_enqueued"))
        attrs = aws.client("sqs").get_queue_attributes(
            QueueUrl=aws.queue_url("BillQueue"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        bill_messages = int(attrs["ApproximateNumberOfMessages"])
        durations = _report_durations(front.log_path)
    finally:
        if front is not None:
            front.stop()
        aws.stop()

    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "requests": total,
        "senders": senders,
        "first_callbacks": new,
        "repeats": total - new,
        "seconds": round(wall, 2),
        "per_second": round(total / wall, 1),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        "max_ms": round(ms[-1], 1),
        "jobs_ready": ready,
        "bill_messages": bill_messages,
        "exactly_once": ready == new and bill_messages == new,
        "function_duration_p50_ms": round(statistics.median(durations), 2) if durations else None,
        "function_duration_p99_ms": round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 2)
        if durations
        else None,
        "front_cpu_ms_per_request": round(front_cpu / total * 1000, 2),
        "moto_cpu_ms_per_request": round(moto_cpu / total * 1000, 2),
    }
