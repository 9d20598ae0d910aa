"""Chaos end to end (issue 6): the real handlers in the local stack against a CC-FS that fails a lot.

One run over ``CHAOS_CALLS`` synthetic calls (default 2,000; ``make chaos``: 10,000) with, at once:
HTTP 5xx on a fifth of CC-FS requests, TCP resets mid-body on a tenth of the downloads (bills, WAVs,
object storage), flow-control bursts (0300008/0300009), duplicated, lost and wrongly signed
callbacks, expired pre-signed URLs, 0300012 from getRecordFileUrlFromObs (the downloadRecordFile
fallback), a download worker crashing mid-batch, and the CC-FS process restarting (connections
cut, port closed for a few seconds, pending callbacks forgotten; generated bills kept, as on its
disk). A few recordings are also made unrecoverable on purpose (missing from object storage *and*
downloadRecordFile), so that "never silent" is tested, not assumed.

Result, checked against the simulator's ground truth (``LocalStack.verify``) and here:
* 0 lost: every CDR and index row, every recording except the deliberately missing ones;
* 0 duplicated: row multisets equal, one S3 version per recording, one REC item per recording;
* 0 partial objects: every recording sha256-identical (bytes and metadata), nothing under
  ``_staging/``, no multipart upload in progress;
* never silent: every recording the indexes list ends COPIED or FAILED in its job's manifest and
  every job leaves DOWNLOADING; a recording that could not be exported is a FAILED REC item listed
  with its reason and counted in the alarmed metric ``RecordingsFailed``: the deliberate ones
  (0300012 everywhere) and any whose five deliveries all met a fault (~1e-5 each at these rates;
  recorded by its last delivery, or by the dead-letter step when a delivery died outside the
  copier); the RecordingDLQ ends empty (settled); no job or window FAILED;
* the faults really happened (simulator counters, forced once each so that a small run has them
  all), and no worker log line carries the sk, an ``auth-v2`` value or a pre-signed URL's query.

Test set-up worth knowing: ``MaxAttempts`` is 5 (a tenth of callbacks lost is far beyond CC-FS's
real behaviour). This run is what showed that moto's DynamoDB transactions are not atomic under
concurrency (a job stuck DOWNLOADING, its increment undone): ``local/stack/processes/motoserver.py`` now
serves DynamoDB one request at a time; and that moto's SQS is not atomic either (a message handed
to two pollers at once; a message sent while two deletes rebuilt the queue dropped: recordings
with no outcome, issue 15): SQS is served one request at a time too. The counts are printed
(``pytest -rP`` / ``make chaos``); a failed run keeps its run directory with moto's state and the
recordings without an outcome (``keep_for_diagnosis``) and prints where it is.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local.ccfs_simulator import PROFILES
from local.stack import LocalStack, StackConfig
from tests.e2e.conftest import needs_handlers, pid_alive, port_open

pytestmark = [pytest.mark.chaos, needs_handlers]

CALLS = int(os.environ.get("CHAOS_CALLS", "2000"))
# moto answers a table scan (the test's progress poll) and a GSI query (the reconciler on every
# tick) by walking every item; bigger runs poll and tick less often so that moto keeps serving
# the workers: 2 s at 2,000 calls, 10 s at 10,000.
POLL_SECONDS = min(10.0, 2.0 * max(1, CALLS // 2000))
STALL_SECONDS = 240  # no progress at all for this long: fail at once with what is pending
TENANTS = 2
UNRECOVERABLE_CALLS = 3  # calls whose recordings exist nowhere: must end FAILED, listed and alarmed
RESTART_DOWN_SECONDS = 3.0
FAULTS = replace(PROFILES["chaos"], latency_ms=0)  # every chaos fault at its profile rate, no idle wait
LOG_FORBIDDEN = ("auth-v2/", "Signature=", "AccessKeyId=")
GAVE_UP = ("gave up after the last delivery", "gave up: SQS moved the message to the RecordingDLQ")


def restart_simulator(sim: Any, down_seconds: float) -> Any:
    """Stop CC-FS and start it again on the same port with the same certificate.

    Like a CC-FS process restart: open connections are cut, the port refuses connections for
    ``down_seconds``, scheduled callbacks (first tries and retries) are forgotten. Generated bills
    stay, as they would on the server's disk: returns their old ``TemporaryDirectory`` (the caller
    keeps it referenced, or it is deleted when collected, and cleans it up at the end).
    """
    port, obs_port = sim.port, sim.obs_port
    contexts = {"CC-FS simulator test CA": sim._server.ssl_context}
    pems = {"CC-FS simulator test CA": Path(sim.ca_bundle).read_text(encoding="utf-8")}
    if sim._obs_server is not None:  # the object store on its own name and CA (the local stack's set-up)
        contexts["OBS simulator test CA"] = sim._obs_server.ssl_context
        pems["OBS simulator test CA"] = Path(sim.obs_ca_bundle).read_text(encoding="utf-8")
    kept, sim._tmp = sim._tmp, None  # stop() would delete the directory holding the built bills
    sim.stop()
    time.sleep(down_seconds)

    def same_certificate(directory: Path, ca_name: str, names: list[str], file_name: str = "ca.pem") -> Any:
        (directory / file_name).write_text(pems[ca_name], encoding="utf-8")
        return contexts[ca_name], str(directory / file_name)

    sim._tls_context = same_certificate
    sim.config.port = port
    if sim.config.obs_name:
        sim.config.obs_port = obs_port
    sim.start()
    assert sim.port == port and sim.obs_port == obs_port
    return kept


def force_first_faults(sim: Any, kinds: dict[str, int]) -> None:
    """The first ``n`` draws of each fault kind fire, the rest follow the profile's rates: every
    kind of fault happens in every run, however few windows or recordings it has."""
    original = sim.fault_streams.roll
    left = dict(kinds)

    def roll(kind: str, rate: float) -> bool:
        if left.get(kind, 0) > 0:
            left[kind] -= 1
            return True
        return bool(original(kind, rate))

    sim.fault_streams.roll = roll


def make_unrecoverable(sim: Any, tenants: list[str], day: Any, calls: int) -> dict[str, list[Any]]:
    """Pick ``calls`` recorded calls; from now on their recordings exist neither in object storage
    (0300012 from getRecordFileUrlFromObs) nor for downloadRecordFile (0300012)."""
    chosen: dict[str, list[Any]] = {}
    for call in (c for t in tenants for c in sim.calls(t, day)):
        if call.recordings and len(chosen) < calls:
            chosen[call.call_id] = list(call.recordings)
    files = {r.file_name for recs in chosen.values() for r in recs}
    sim.set_faults(not_found_calls=set(chosen))
    original = sim.operations._op_downloadRecordFile

    def download_record_file(ex: Any, ak: str, payload: dict[str, Any]) -> None:
        if (payload.get("msgBody") or {}).get("fileName") in files:
            sim.operations.reply(ex, "0300012")
            return
        original(ex, ak, payload)

    sim.operations._op_downloadRecordFile = download_record_file
    return chosen


def _recording_key(rec: Any) -> str:
    stem = rec.file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"recordings/account_id={rec.account_id}/call_date={rec.call_begin:%Y-%m-%d}/{rec.call_id}/{stem}.wav"


@pytest.fixture
def chaos_stack() -> Iterator[LocalStack]:
    stack = LocalStack(
        StackConfig(
            tenants=TENANTS,
            calls=CALLS // TENANTS,
            faults=FAULTS,
            seed=11,
            tick_seconds=POLL_SECONDS,
            # A tenth of all callbacks lost is far beyond what CC-FS does; with the default 3 requests
            # per window one of the 48 windows would fail (loudly: JobsFailed) in about 1 run in 20.
            # 4-hour windows: 12 bills of a few hundred calls each (the faults are forced to happen,
            # see force_first_faults, so fewer windows lose no coverage and save minutes).
            parameters={"MaxAttempts": 5, "WindowMinutes": 240},
            keep_run_dir=bool(os.environ.get("CHAOS_KEEP_RUN_DIR")),  # logs and control files, to debug
        )
    )
    kept_bills: list[Any] = []  # TemporaryDirectory objects of restarted simulators
    stack.kept_bills = kept_bills  # type: ignore[attr-defined]
    stack.start()
    try:
        yield stack
    finally:
        pids = [c.pid for c in stack.children()]
        ports = [stack.sim.port, int(stack.endpoint_url.rsplit(":", 1)[1])]
        stack.stop()
        if stack.config.keep_run_dir:
            print(f"run directory kept: {stack.run_dir}")
        for directory in kept_bills:
            directory.cleanup()
        assert not any(pid_alive(p) for p in pids), "a child process outlived stop()"
        assert not any(port_open(p) for p in ports), "a port is still open after stop()"


def keep_for_diagnosis(stack: LocalStack) -> None:
    """A failed run keeps its run directory (logs, control files) plus moto's state and the
    recordings without an outcome (``LocalStack.diagnose``), and says where they are."""
    stack.config.keep_run_dir = True
    try:
        state = stack.diagnose()
    except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
        print(f"\nrun directory kept: {stack.run_dir} (state not written: {exc!r})")
        return
    pending = json.loads((state / "pending-recordings.json").read_text(encoding="utf-8"))
    print(f"\nrun directory kept: {stack.run_dir}; state in {state}")
    print(f"{len(pending)} recording(s) without an outcome:")
    for entry in pending[:20]:
        seen = [(e.get("message_id"), e.get("receive_count"), e.get("message")) for e in entry.get("log", [])]
        print(f"  job {entry['response_id']} call {entry['call_id']} {entry['file_name']}: {seen[-6:]}")


def test_chaos_loses_nothing_duplicates_nothing_and_is_never_silent(chaos_stack: LocalStack) -> None:
    try:
        run_chaos(chaos_stack)
    except BaseException:
        keep_for_diagnosis(chaos_stack)
        raise


def run_chaos(stack: LocalStack) -> None:
    sim = stack.sim
    started = time.monotonic()
    chosen = make_unrecoverable(sim, stack.tenants, stack.base_date, UNRECOVERABLE_CALLS)
    force_first_faults(
        sim,
        {
            "lost_callback": 2,
            "bad_signature_callback": 2,
            "duplicate_callback": 2,
            "expired_url": 3,
            "not_found": 3,
            "reset": 3,
            "error": 3,
        },
    )
    unrecoverable = {_recording_key(r): r for recs in chosen.values() for r in recs}
    all_recordings = sum(len(c.recordings) for t in stack.tenants for c in sim.calls(t, stack.base_date))
    crash_report = stack.set_worker_crash(after_records=7, queue="RecordingQueue")
    events: dict[str, float] = {}

    last_change = [time.monotonic(), None]

    def on_progress(progress: Any) -> None:
        seen = (progress.recordings_done, sorted(progress.jobs.items()), sorted(progress.queues.items()))
        if seen != last_change[1]:
            last_change[:] = [time.monotonic(), seen]
        elif time.monotonic() - last_change[0] > STALL_SECONDS:
            raise AssertionError(f"no progress for {STALL_SECONDS}s: {progress.line()} pending {progress.pending[:5]}")
        # restart CC-FS once a good part of the recordings is flowing (bills and callbacks too)
        if "restart" not in events and progress.recordings_done > 0.3 * all_recordings:
            events["restart"] = time.monotonic() - started
            kept = restart_simulator(sim, RESTART_DOWN_SECONDS)
            if kept is not None:
                stack.kept_bills.append(kept)  # type: ignore[attr-defined]

    timeout = max(600.0, CALLS * 0.6)  # a bound for a shared, loaded machine; a stall fails sooner
    # No bucket listing while polling: the progress check is a few key queries (cheap for moto).
    progress = stack.run_until_complete(timeout, on_progress=on_progress, interval=POLL_SECONDS, with_s3=False)
    elapsed = time.monotonic() - started
    assert progress.complete, f"not complete after {timeout:.0f}s: {progress.pending[:5]}"
    stack.pause_schedule()

    verdict = stack.verify()
    counts = verdict.counts
    s3 = stack.client("s3")
    counters = sim.counters()
    metrics = stack.metrics()
    items = stack.scan_jobs_table()
    jobs = [i for i in items if i.get("sk") == "JOB" and str(i.get("pk", "")).startswith("JOB#")]
    recs = [i for i in items if str(i.get("sk", "")).startswith("REC#")]

    # ---------------------------------------------------------------- the report
    crashed = json.loads(crash_report.read_text()) if crash_report.exists() else None
    restarted = events.get("restart", -1)
    print(f"\nchaos: {CALLS} calls ({TENANTS} tenants), {elapsed:.0f}s, CC-FS restarted at {restarted:.0f}s")
    print(f"  rows: cdr {counts['cdr_rows']} index {counts['index_rows']}")
    print(f"  recordings: {counts['recordings']} (unrecoverable on purpose: {len(unrecoverable)})")
    print(f"  jobs: {counts['jobs']}  windows: {counts['windows']}  manifests: {counts['manifests']}")
    print(f"  crash mid-batch: {crashed}")
    faults = ("errors_injected", "resets_injected", "throttles_injected", "callbacks_duplicated", "callbacks_lost")
    faults += ("callbacks_bad_signature", "expired_urls_issued", "obs_403_expired", "not_found_injected")
    print("  CC-FS faults: " + ", ".join(f"{k}={counters.get(k, 0)}" for k in faults))
    shown = ("JobsCompleted", "JobsPartial", "JobsReRequested", "JobsFailed", "CallbacksAccepted", "CallbackDuplicate")
    shown += ("CallbackSignatureRejected", "RecordingsCopied", "RecordingsDuplicate", "RecordingsFailed")
    shown += ("UrlRefreshes", "RecordingFallbacks", "CcfsErrors", "BadRows")
    print("  metrics: " + ", ".join(f"{k}={metrics.get(k, 0):g}" for k in shown))
    print(f"  worker restarts: {stack.worker_restarts()}  notes: {stack.notes[-3:]}")

    # ---------------------------------------------------------------- never silent
    # A recording that fails for good is a REC item FAILED with its reason, listed in its job's
    # manifest and counted in RecordingsFailed (alarmed). Besides the deliberate ones, a recording
    # whose every delivery (5) met a fault may end so too (~1e-5 each at these rates): loud, allowed.
    failed = {r["file_name"]: r for r in recs if r.get("status") == "FAILED"}
    listed: dict[str, str] = {}
    for job in jobs:
        if int(job.get("recordings_failed") or 0):
            body = s3.get_object(Bucket=stack.names.bucket, Key=f"manifests/{job['response_id']}.json")["Body"]
            manifest = json.loads(body.read())
            assert manifest["status"] == job["job_status"] == "PARTIAL"  # never a plain COMPLETED
            assert manifest["counts"]["recordings_failed"] == len(manifest["failures"])
            listed.update({f["file_name"]: f["reason"] for f in manifest["failures"]})
    deliberate = {r.file_name for r in unrecoverable.values()}
    assert deliberate <= set(failed), "a recording that exists nowhere did not end FAILED"
    assert set(listed) == set(failed), "a failure is missing from the manifests"
    assert all("0300012" in listed[name] for name in deliberate), listed
    gave_up = {name: listed[name] for name in set(failed) - deliberate}
    # the copier's last delivery, or the dead-letter step for deliveries that died outside it
    assert all(reason.startswith(GAVE_UP) for reason in gave_up.values()), gave_up
    assert metrics.get("RecordingsFailed") == len(failed)  # alarmed (RecordingsFailedAlarm)
    print(f"  failed for good: {len(failed)} ({len(deliberate)} deliberate, {len(gave_up)} after 5 deliveries)")

    # ---------------------------------------------------------------- 0 lost, 0 duplicated, 0 partial
    allowed = {f"recording missing: {_recording_key(r)}" for r in unrecoverable.values()}
    allowed |= {p for p in verdict.problems if p.startswith("recording missing: ") and _missing_is_failed(p, failed)}
    other_problems = [p for p in verdict.problems if p not in allowed]
    assert other_problems == [], "\n".join(other_problems[:20])
    assert counts["cdr_rows"]["actual"] == counts["cdr_rows"]["expected"] > CALLS
    assert counts["index_rows"]["actual"] == counts["index_rows"]["expected"]
    expected_recordings = counts["recordings"]["expected"]
    assert expected_recordings == all_recordings > CALLS // 2
    assert counts["recordings"]["verified"] == expected_recordings - len(failed)
    # every recording listed ends COPIED or FAILED in its job's manifest (checked by verify, printed)
    assert counts["recordings_named_in_manifests"] == expected_recordings
    # the RecordingDLQ is drained by the dead-letter step: a harmless duplicate is no false alarm
    assert counts["dlq_messages"] == 0
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stack.names.bucket, Prefix="recordings/"):
        versions.update(v["Key"] for v in page.get("Versions", []) if v["Key"].endswith(".wav"))
    assert versions and max(versions.values()) == 1, versions.most_common(3)
    assert len(recs) == len({(i["pk"], i["sk"]) for i in recs}) == expected_recordings
    assert not metrics.get("JobsFailed")
    assert {j["job_status"] for j in jobs} <= {"COMPLETED", "PARTIAL", "SUPERSEDED", "UNSOLICITED"}
    partial = [j for j in jobs if j["job_status"] == "PARTIAL"]
    assert all(int(j.get("recordings_failed") or 0) for j in partial)  # PARTIAL exactly when something failed
    assert metrics.get("JobsPartial", 0) == len(partial) > 0  # counted, alarmed (JobsPartialAlarm)

    # ---------------------------------------------------------------- the chaos happened
    assert "restart" in events, "CC-FS was never restarted"
    assert crashed is not None and 0 < crashed["handed"] < crashed["batch"], crashed  # mid-batch
    for name in ("errors_injected", "resets_injected", "throttles_injected", "callbacks_duplicated"):
        assert counters.get(name, 0) > 0, f"{name} never happened: {counters}"
    for name in ("callbacks_lost", "expired_urls_issued", "not_found_injected", "callbacks_bad_signature"):
        assert counters.get(name, 0) > 0, f"{name} never happened: {counters}"
    assert metrics.get("UrlRefreshes", 0) > 0 and metrics.get("RecordingFallbacks", 0) > len(unrecoverable)
    assert metrics.get("CallbackDuplicate", 0) > 0 and metrics.get("JobsReRequested", 0) > 0
    assert metrics.get("CallbackSignatureRejected", 0) > 0  # the wrongly signed callbacks were refused

    # ---------------------------------------------------------------- no secret in any worker log
    leaks = []
    for path in sorted((stack.run_dir / "logs").glob("*.log")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if sim.sk in line or any(text in line for text in LOG_FORBIDDEN):
                leaks.append(f"{path.name}:{number}: {line[:200]}")
    assert leaks == [], "\n".join(leaks[:10])


def _missing_is_failed(problem: str, failed: dict[str, Any]) -> bool:
    """``recording missing: <key>`` for a recording whose REC item is FAILED (listed, alarmed)."""
    key = problem.removeprefix("recording missing: ")
    return any(
        key.endswith("/" + name.rsplit("/", 1)[-1]) and f"/{rec['call_id']}/" in key for name, rec in failed.items()
    )


def test_restart_helper_keeps_port_certificate_and_bills(tmp_path: Path) -> None:
    """The restart above is a faithful one: same address and CA, built bills still downloadable."""
    import ssl

    import httpx

    from local.ccfs_simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig()).start()
    kept: Any = None
    try:
        port, pem = sim.port, Path(sim.ca_bundle).read_text()
        probe = Path(sim._tmp.name) / "a-built-bill.zip"
        probe.write_bytes(b"PK")
        kept = restart_simulator(sim, 0.2)
        gc.collect()  # the old directory must survive a collection: it is referenced, not deleted
        assert sim.port == port and Path(sim.ca_bundle).read_text() == pem
        assert probe.exists()  # the old directory (the bills) survived
        context = ssl.create_default_context(cafile=sim.ca_bundle)
        with httpx.Client(verify=context) as client:
            assert client.get(f"{sim.admin_url}/counters").status_code == 200
    finally:
        sim.stop()
        if kept is not None:
            kept.cleanup()
