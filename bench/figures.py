"""The measurements. Each returns a JSON-able dict; ``bench.report`` turns them into the table.

Every handler figure runs the real handler module in its own process against the simulator and a
fresh bench moto server built from template.yaml, with the environment the template gives the
function. The orchestrator plays the event source mapping: it hands the handler SQS batches of the
template's ``BatchSize`` (the poller's own SQS calls are not the function's cost).
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    TENANT,
    ZONE,
    Aws,
    ChildResult,
    GiB,
    MiB,
    NullS3,
    Template,
    base_env,
    cpu_seconds,
    day_window,
    log,
    mem_available,
    new_response_id,
    recording_calls,
    run_child,
    serve_bill,
)

DOWNLOAD = "DownloadFunction"


@dataclass
class Params:
    big_recording: int = GiB
    recordings: int = 500
    recording_size: int = 1_000_000
    big_bill_bytes: int = GiB
    big_bill_rows: int = 1_000_000
    scaling_rows: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    callbacks: int = 5_000
    senders: int = 8
    coldstart_runs: int = 10
    latency_ms: float = 50.0
    use_cache: bool = True
    handler_env: dict[str, str] = field(default_factory=dict)  # experiments: override template values
    recording_batch_size: int | None = None  # experiments: override the template's BatchSize


SMOKE = Params(
    big_recording=48 * MiB,
    recordings=30,
    recording_size=200_000,
    big_bill_bytes=24 * MiB,
    big_bill_rows=60_000,
    scaling_rows=(2_000, 20_000),
    callbacks=300,
    coldstart_runs=3,
)


@dataclass
class Context:
    run_dir: Path
    params: Params
    sim: Any
    day: date
    template: Template
    recording_calls: list[Any]
    big_call: Any
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- set-up


def start_simulator(params: Params) -> tuple[Any, date, list[Any], Any]:
    """One simulator for the run: a day with enough recorded calls, ``recordings`` of them exactly
    ``recording_size`` bytes, and one single-recording call of ``big_recording`` bytes."""
    from local.ccfs_simulator import Faults, Simulator, SimulatorConfig, TenantSpec

    day = date.today() - timedelta(days=3)
    calls_per_day = max(200, int(params.recordings * 1.8))
    tenants = [TenantSpec(TENANT, ZONE, calls_per_day=calls_per_day)]
    probe = Simulator(SimulatorConfig(seed=1, tenants=tenants, base_date=day, days=1))
    chosen = recording_calls(probe, day, params.recordings)
    ids = {c.call_id for c in chosen}
    big = next(c for c in probe.calls(TENANT, day) if len(c.recordings) == 1 and c.call_id not in ids)
    sizes = dict.fromkeys(ids, params.recording_size)
    sizes[big.call_id] = params.big_recording
    config = SimulatorConfig(
        seed=1,
        tenants=tenants,
        base_date=day,
        days=1,
        ak="bench-ak",
        big_recordings=sizes,
        faults=Faults(latency_ms=params.latency_ms),
        callback_max_tries=1,
    )
    sim = Simulator(config).start()
    calls = {c.call_id: c for c in sim.calls(TENANT, day)}
    return sim, day, [calls[i] for i in sorted(ids, key=lambda i: calls[i].begin)], calls[big.call_id]


def _bill_of_calls(ctx: Context, calls: list[Any], response_id: str) -> str:
    from local.ccfs_simulator.bills import write_bill_zip
    from local.ccfs_simulator.data import CDR_HEADER, INDEX_HEADER

    path = ctx.run_dir / f"bill-{response_id}.zip"
    write_bill_zip(
        path,
        generated_at=datetime.now(UTC),
        random_digits="123",
        cdr=(CDR_HEADER, [leg for call in calls for leg in call.legs]),
        index=(INDEX_HEADER, [rec.row for call in calls for rec in call.recordings]),
        split_rows=50_000,
    )
    return serve_bill(ctx.sim, path, response_id)


def _download(ctx: Context, aws: Aws, records: list[dict[str, Any]], queue: str, **extra: Any) -> ChildResult:
    spec = ctx.template.model.functions[DOWNLOAD]
    args = {
        "records": records,
        "queue_arn": aws.queue_arn(queue),
        "batch_size": _batch_size(ctx, queue),
        "function_name": f"aicc-bench-{DOWNLOAD}",
        "memory": spec.memory,
        "timeout": spec.timeout,
    }
    env = aws.function_env(DOWNLOAD)
    env.update(ctx.params.handler_env)
    result = run_child("download", args, env, ctx.run_dir, timeout=extra.pop("timeout", 900))
    if result.data["failures"]:
        raise RuntimeError(f"{len(result.data['failures'])} record(s) failed; see {result.log_path}")
    return result


def _batch_size(ctx: Context, queue: str) -> int:
    if queue == "RecordingQueue" and ctx.params.recording_batch_size:
        return ctx.params.recording_batch_size
    return int(ctx.template.mapping(DOWNLOAD, queue).batch_size)


def _bill_record(response_id: str, bill_file_name: str) -> dict[str, Any]:
    body = {"responseId": response_id, "billFileName": bill_file_name, "tenant": TENANT, "accountId": TENANT}
    return {"message_id": f"bill-{response_id}", "body": json.dumps(body)}


def _fan_out(ctx: Context, aws: Aws, calls: list[Any]) -> tuple[str, list[dict[str, Any]], ChildResult]:
    """Run the bill step of a job holding ``calls``; return the RecordingQueue messages it sent (and
    the bill step's run, whose AWS requests include the fan-out's ``SendMessageBatch`` calls)."""
    rid = new_response_id()
    name = _bill_of_calls(ctx, calls, rid)
    begin, end = day_window(ctx.day)
    aws.seed_job(rid, begin=begin, end=end, status="READY", bill_file_name=name)
    bill = _download(ctx, aws, [_bill_record(rid, name)], "BillQueue")
    messages = aws.drain("RecordingQueue")
    return rid, [{"message_id": m["MessageId"], "body": m["Body"]} for m in messages], bill


def _check_completed(aws: Aws, rid: str, done: int) -> dict[str, Any]:
    job = aws.get_job(rid)
    if job.get("job_status") != "COMPLETED" or int(job.get("recordings_done", 0)) != done:
        raise RuntimeError(f"job {rid}: {job.get('job_status')}, {job.get('recordings_done')}/{done} recordings done")
    return job


# ---------------------------------------------------------------------------- 1 GiB recording


def big_recording(ctx: Context) -> dict[str, Any]:
    """Peak RSS and rate of one big recording: handler vs naive client; each leg alone."""
    size = ctx.params.big_recording
    recording = ctx.big_call.recordings[0]
    out: dict[str, Any] = {"bytes": size}

    aws = Aws.start(ctx.run_dir, "moto-bigrec", ctx.template, ctx.sim)
    try:
        rid, records, _ = _fan_out(ctx, aws, [ctx.big_call])
        expected = {}
        sha = threading.Thread(target=lambda: expected.update(sha256=ctx.sim.recording_sha256(recording)))
        sha.start()
        log(f"big recording: {size / MiB:.0f} MiB through the download handler")
        sha.join()  # before the measurement: hashing 1 GiB here would compete for the CPU
        cpu0 = (cpu_seconds(), cpu_seconds(aws.moto.pid))
        result = _download(ctx, aws, records, "RecordingQueue")
        cpu1 = (cpu_seconds(), cpu_seconds(aws.moto.pid))
        _check_completed(aws, rid, 1)
        [final] = [o for o in aws.objects("recordings/") if o["Key"].endswith(".wav")]
        head = aws.client("s3").head_object(Bucket=aws.bucket, Key=final["Key"])
        verified = head["ContentLength"] == size and head["Metadata"].get("sha256") == expected["sha256"]
        if not verified:
            raise RuntimeError("the copied recording does not match the simulator's size and sha256")
        out["project"] = {
            "peak_rss_mib": round(result.max_rss_mib, 1),
            "rss_after_import_mib": round(result.data["rss_after_import_kib"] / 1024, 1),
            "seconds": round(result.data["handler_s"], 2),
            "mb_per_s": round(size / result.data["handler_s"] / 1e6, 1),
            "cpu_s": round(result.user_s + result.sys_s, 1),
            "verified_sha256": verified,
            "aws_requests": result.data["aws_requests"]["by_operation"],  # a multipart copy: see docs
            "s3_phases_s": {k: round(v, 2) for k, v in result.data["s3_phases_s"].items()},
            "cpu_s_by_process": {
                "handler": round(result.user_s + result.sys_s, 1),
                "simulator": round(cpu1[0] - cpu0[0], 1),
                "moto": round(cpu1[1] - cpu0[1], 1),
            },
        }
        out["moto_peak_rss_mib"] = round(aws.moto.peak_rss_mib(), 1)
    finally:
        aws.stop()

    sim = ctx.sim
    begin = recording.call_begin.isoformat(sep=" ")
    end = recording.call_end.isoformat(sep=" ")
    log("big recording: CC-FS leg alone (simulator -> nowhere)")
    sim_cpu0 = cpu_seconds()
    leg = run_child(
        "leg-download",
        {
            "base_url": sim.base_url,
            "ak": sim.ak,
            "sk": sim.sk,
            "ca_bundle": sim.ca_bundle,
            "call_id": ctx.big_call.call_id,
            "begin": begin,
            "end": end,
        },
        base_env(ctx.run_dir),
        ctx.run_dir,
    )
    out["leg_ccfs_mb_per_s"] = round(leg.data["bytes"] / leg.data["seconds"] / 1e6, 1)
    out["leg_ccfs_cpu_s"] = {
        "client": round(leg.user_s + leg.sys_s, 1),
        "simulator": round(cpu_seconds() - sim_cpu0, 1),
    }

    aws = Aws.start(ctx.run_dir, "moto-leg", ctx.template, ctx.sim)
    try:
        log("big recording: S3 leg alone (bytes -> moto S3)")
        env = {**base_env(ctx.run_dir), "AWS_ENDPOINT_URL": aws.moto.endpoint_url}
        moto_cpu0 = cpu_seconds(aws.moto.pid)
        leg = run_child("leg-upload", {"size": size, "bucket": aws.bucket, "key": "_bench/leg.bin"}, env, ctx.run_dir)
        out["leg_s3_mb_per_s"] = round(leg.data["bytes"] / leg.data["seconds"] / 1e6, 1)
        out["leg_s3_cpu_s"] = {
            "client": round(leg.user_s + leg.sys_s, 1),
            "moto": round(cpu_seconds(aws.moto.pid) - moto_cpu0, 1),
        }
    finally:
        aws.stop()
    slower = min(out["leg_ccfs_mb_per_s"], out["leg_s3_mb_per_s"])
    out["rate_vs_slower_leg"] = round(out["project"]["mb_per_s"] / slower, 3)

    needed = 2.5 * size
    if mem_available() < needed + 512 * MiB:
        out["naive"] = {"skipped": f"needs ~{needed / GiB:.1f} GiB free memory"}
        return out
    log("big recording: naive client (response.content, then put_object to a null S3)")
    sink = NullS3()
    try:
        item = {
            "callId": ctx.big_call.call_id,
            "callBegin": recording.call_begin.strftime("%Y-%m-%d %H:%M:%S"),
            "callEnd": recording.call_end.strftime("%Y-%m-%d %H:%M:%S"),
            "fileName": recording.file_name,
            "accountId": TENANT,
            "callDate": str(ctx.day),
        }
        naive = run_child(
            "naive-recordings",
            {
                "items": [item],
                "base_url": sim.base_url,
                "ca_bundle": sim.ca_bundle,
                "ak": sim.ak,
                "sk": sim.sk,
                "endpoint_url": sink.endpoint_url,
                "bucket": "null",
            },
            base_env(ctx.run_dir),
            ctx.run_dir,
        )
    finally:
        sink.stop()
    out["naive"] = {
        "peak_rss_mib": round(naive.max_rss_mib, 1),
        "seconds": round(naive.data["seconds"], 2),
        "mb_per_s": round(size / naive.data["seconds"] / 1e6, 1),
        "s3": "null sink (discards the body)",
    }
    return out


# ---------------------------------------------------------------------------- recordings per minute


def recordings_rate(ctx: Context) -> dict[str, Any]:
    """Many small recordings through one handler process vs the naive script, same simulator."""
    n = ctx.params.recordings
    aws = Aws.start(ctx.run_dir, "moto-recs", ctx.template, ctx.sim)
    try:
        rid, records, bill = _fan_out(ctx, aws, ctx.recording_calls)
        if len(records) != n:
            raise RuntimeError(f"bill step sent {len(records)} recording messages, expected {n}")
        batch_size = _batch_size(ctx, "RecordingQueue")
        env = {**aws.function_env(DOWNLOAD), **ctx.params.handler_env}
        log(f"recordings: {n} x {ctx.params.recording_size / 1e6:.1f} MB, batches of {batch_size}")
        ctx.sim.reset_counters()
        cpu0 = (cpu_seconds(aws.moto.pid), cpu_seconds())
        result = _download(ctx, aws, records, "RecordingQueue")
        cpu1 = (cpu_seconds(aws.moto.pid), cpu_seconds())
        counters = ctx.sim.counters()
        _check_completed(aws, rid, n)
        project_s = result.data["handler_s"]

        items = []
        for record in records:
            body = json.loads(record["body"])
            items.append({k: body[k] for k in ("callId", "callBegin", "callEnd", "fileName", "accountId", "callDate")})
        log(f"recordings: naive script, {n} one after another")
        sim = ctx.sim
        naive = run_child(
            "naive-recordings",
            {
                "items": items,
                "base_url": sim.base_url,
                "ca_bundle": sim.ca_bundle,
                "ak": sim.ak,
                "sk": sim.sk,
                "endpoint_url": aws.moto.endpoint_url,
                "bucket": aws.bucket,
            },
            base_env(ctx.run_dir),
            ctx.run_dir,
        )
        cpu2 = (cpu_seconds(aws.moto.pid), cpu_seconds())
        moto_rss = aws.moto.peak_rss_mib()
    finally:
        aws.stop()
    naive_s = naive.data["seconds"]
    return {
        "recordings": n,
        "bytes_each": ctx.params.recording_size,
        "latency_ms": ctx.params.latency_ms,
        "batch_size": batch_size,
        "concurrency": env.get("RECORDING_CONCURRENCY", "1 (sequential)"),
        "project": {
            "per_minute": round(n / project_s * 60),
            "seconds": round(project_s, 2),
            "peak_rss_mib": round(result.max_rss_mib, 1),
            "cpu_s": round(result.user_s + result.sys_s, 1),
            "invocations_cpu_ms_per_recording": round(result.data["invocations_cpu_s"] / n * 1000, 2),
            "aws_requests": result.data["aws_requests"],
            "fan_out": _fan_out_requests(bill.data["aws_requests"], n),
            "batches": result.data["batches"],
            "ccfs_requests": counters.get("requests_total", 0),
            "moto_cpu_s": round(cpu1[0] - cpu0[0], 1),
            "simulator_cpu_s": round(cpu1[1] - cpu0[1], 1),
        },
        "naive": {
            "per_minute": round(n / naive_s * 60),
            "seconds": round(naive_s, 2),
            "peak_rss_mib": round(naive.max_rss_mib, 1),
            "cpu_s": round(naive.user_s + naive.sys_s, 1),
            "invocations_cpu_ms_per_recording": round(naive.data["invocations_cpu_s"] / n * 1000, 2),
            "aws_requests": naive.data["aws_requests"],
            "moto_cpu_s": round(cpu2[0] - cpu1[0], 1),
            "simulator_cpu_s": round(cpu2[1] - cpu1[1], 1),
        },
        "ratio": round(naive_s / project_s, 2),
        "moto_peak_rss_mib": round(moto_rss, 1),
    }


def _fan_out_requests(bill: dict[str, Any], recordings: int) -> dict[str, Any]:
    """The bill step's requests that exist because of the recordings: the RecordingQueue messages it
    sends (``SendMessageBatch``, up to 10 a call), per recording. The rest of the bill step (the job,
    the CDR and index objects) is the bill's, whether or not recordings are copied."""
    sends = sum(n for op, n in bill["by_operation"].items() if op.startswith("sqs:Send"))
    return {
        "sqs_send_requests": sends,
        "per_recording": round(sends / recordings, 3) if recordings else 0.0,
        "bill_step_by_operation": bill["by_operation"],
    }


# ---------------------------------------------------------------------------- bills


def _bill_run(ctx: Context, aws: Aws, info: Any) -> dict[str, Any]:
    rid = new_response_id()
    name = serve_bill(ctx.sim, Path(info.path), rid)
    begin = datetime.combine(ctx.day, datetime.min.time())
    aws.seed_job(
        rid,
        begin=begin,
        end=begin + timedelta(days=2, seconds=-1),
        status="READY",
        data_type="call",
        bill_file_name=name,
    )
    result = _download(ctx, aws, [_bill_record(rid, name)], "BillQueue")
    job = aws.get_job(rid)
    if job.get("job_status") != "COMPLETED" or int(job.get("cdr_rows", -1)) != info.rows:
        raise RuntimeError(f"bill job {rid}: {job.get('job_status')}, cdr_rows {job.get('cdr_rows')} of {info.rows}")
    seconds = result.data["handler_s"]
    return {
        "rows": info.rows,
        "zip_bytes": info.size,
        "entries": info.entries,
        "stored": info.stored,
        "seconds": round(seconds, 2),
        "rows_per_s": round(info.rows / seconds),
        "peak_rss_mib": round(result.max_rss_mib, 1),
        "rss_after_import_mib": round(result.data["rss_after_import_kib"] / 1024, 1),
        "cpu_s": round(result.user_s + result.sys_s, 1),
    }


def big_bill(ctx: Context) -> dict[str, Any]:
    from bench.billgen import cdr_bill

    p = ctx.params
    log(f"big bill: writing a stored ZIP of >= {p.big_bill_bytes / MiB:.0f} MiB, >= {p.big_bill_rows} CDR rows")
    info = cdr_bill(rows=p.big_bill_rows, min_bytes=p.big_bill_bytes, day=ctx.day, stored=True, use_cache=p.use_cache)
    aws = Aws.start(ctx.run_dir, "moto-bigbill", ctx.template, ctx.sim)
    try:
        log(f"big bill: {info.size / MiB:.0f} MiB, {info.rows} rows through the download handler")
        out = _bill_run(ctx, aws, info)
        out["moto_peak_rss_mib"] = round(aws.moto.peak_rss_mib(), 1)
    finally:
        aws.stop()
    return out


def scaling(ctx: Context) -> dict[str, Any]:
    from bench.billgen import cdr_bill

    runs = []
    aws = Aws.start(ctx.run_dir, "moto-scaling", ctx.template, ctx.sim)
    try:
        for rows in ctx.params.scaling_rows:
            info = cdr_bill(rows=rows, day=ctx.day, use_cache=ctx.params.use_cache)
            log(f"scaling: {rows} CDR rows ({info.size / MiB:.1f} MiB deflated)")
            runs.append(_bill_run(ctx, aws, info))
    finally:
        aws.stop()
    slopes = []
    for a, b in itertools.pairwise(runs):
        slopes.append((b["seconds"] - a["seconds"]) / (b["rows"] - a["rows"]) * 1e6)  # µs per extra row
    cpu_slopes = [(b["cpu_s"] - a["cpu_s"]) / (b["rows"] - a["rows"]) * 1e6 for a, b in itertools.pairwise(runs)]
    rss = [r["peak_rss_mib"] for r in runs]
    return {
        "runs": runs,
        "us_per_row_between_sizes": [round(s, 2) for s in slopes],
        "cpu_us_per_row_between_sizes": [round(s, 2) for s in cpu_slopes],  # steadier than wall under load
        "slope_spread": round(max(slopes) / min(slopes) - 1, 3) if len(slopes) > 1 and min(slopes) > 0 else 0.0,
        "rss_spread_mib": round(max(rss) - min(rss), 1),
    }


# ---------------------------------------------------------------------------- cold start

_IMPORT = """
import time
_t0 = time.perf_counter()
import sys
{body}
_t1 = time.perf_counter()
print(repr(_t1 - _t0))
"""


def coldstart(ctx: Context) -> dict[str, Any]:
    """Import (+ module-scope init) of each handler in a fresh interpreter vs ``import boto3``."""
    aws = Aws.start(ctx.run_dir, "moto-cold", ctx.template, ctx.sim)
    functions = {"callback": "CallbackFunction", "download": DOWNLOAD, "request_export": "RequestExportFunction"}
    try:
        envs = {name: aws.function_env(lid) for name, lid in functions.items()}
    finally:
        aws.stop()
    layer = str(ROOT / "layers" / "shared")
    scripts = {"boto3": _IMPORT.format(body="import boto3")}
    for name in functions:
        code = str(ROOT / "functions" / name)
        scripts[name] = _IMPORT.format(body=f"sys.path[:0] = [{code!r}, {layer!r}]\nimport app")
    baseline_env = base_env(ctx.run_dir)

    def once(name: str, write_pyc: bool = False) -> float:
        env = dict(envs.get(name, baseline_env))
        if write_pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        out = subprocess.run(
            [sys.executable, "-c", scripts[name]], env=env, cwd=str(ROOT), capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip().splitlines()[-1]) * 1000

    for name in scripts:  # compile once (as a deployment package with __pycache__ would be)
        once(name, write_pyc=True)
    times: dict[str, list[float]] = {name: [] for name in scripts}
    for _ in range(ctx.params.coldstart_runs):
        for name in scripts:  # interleaved: background load hits every module alike
            times[name].append(once(name))
    medians = {name: statistics.median(values) for name, values in times.items()}
    profile = {}
    for name in functions:  # where the time goes: the handler's direct imports, by -X importtime
        env = dict(envs[name])
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", scripts[name]],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            check=True,
        )
        profile[name] = _import_profile(out.stderr)
    return {
        "runs": ctx.params.coldstart_runs,
        "median_ms": {name: round(v, 1) for name, v in medians.items()},
        "ratio": {name: round(medians[name] / medians["boto3"], 2) for name in functions},
        "all_ms": {name: [round(v, 1) for v in values] for name, values in times.items()},
        "importtime_top_ms": profile,
        "note": "-X importtime figures are inflated by its own overhead; compare them with each other only",
    }


def _import_profile(stderr: str, top: int = 8) -> dict[str, float]:
    """Cumulative ms of the modules ``app`` imports directly (the first to import a package pays it)."""
    entries: list[tuple[str, float]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue
        depth = (len(name) - len(name.lstrip(" "))) // 2
        if depth == 1:  # 'app' itself is depth 0 (listed last); its direct imports are depth 1
            entries.append((name.strip(), int(cumulative) / 1000))
        elif depth == 0 and name.strip() == "app":
            entries.append(("app (total)", int(cumulative) / 1000))
    entries.sort(key=lambda e: -e[1])
    return {name: round(ms, 1) for name, ms in entries[: top + 1]}


# ---------------------------------------------------------------------------- callbacks


def callbacks(ctx: Context) -> dict[str, Any]:
    from bench.callbacks import run_load

    return run_load(ctx.params.callbacks, ctx.params.senders, run_dir=ctx.run_dir, template=ctx.template, sim=ctx.sim)


FIGURES = {
    "big_recording": big_recording,
    "recordings_rate": recordings_rate,
    "big_bill": big_bill,
    "scaling": scaling,
    "coldstart": coldstart,
    "callbacks": callbacks,
}


def timed(name: str, ctx: Context) -> dict[str, Any]:
    started = time.monotonic()
    load = __import__("os").getloadavg()[0]
    result = FIGURES[name](ctx)
    result["_elapsed_s"] = round(time.monotonic() - started, 1)
    result["_load_1min_at_start"] = round(load, 2)
    return result
