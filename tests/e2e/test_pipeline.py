"""End to end: the real handlers in the local stack against the CC-FS simulator.

Each test runs a whole stack (moto, simulator, API front, one process per function instance),
waits until every requested window is COMPLETED and the queues are empty, and checks the bucket
against the simulator's ground truth with ``LocalStack.verify`` (every CDR and index row, every
recording by sha256, sidecars, manifests, no DLQ message, no staging leftovers).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from local.ccfs_simulator import PROFILES, Faults
from local.sql.glue import json_fields, load_glue_tables
from local.sql.queries import differences, stack_answers, truth_answers
from local.stack import LocalStack, StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, batching_windows, needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]

FMT = "%Y-%m-%d %H:%M:%S"


def _complete_and_verified(stack: LocalStack, timeout: float) -> object:
    progress = stack.run_until_complete(timeout)
    assert progress.complete, f"not complete after {timeout}s: {progress.pending[:5]}"
    stack.pause_schedule()
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)
    return verdict


def _assert_every_export_object_is_locked(stack, days):
    s3 = stack.client("s3")
    bucket = stack.names.bucket
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"
    }
    keys = [o["Key"] for o in stack.list_objects()]
    kinds = {key.split("/", 1)[0] for key in keys}
    assert {"recordings", "cdr", "manifests", "raw"} <= kinds, kinds
    soon = datetime.now(UTC) + timedelta(days=days)
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head.get("ObjectLockMode") == "GOVERNANCE", key
        assert soon - timedelta(hours=1) < head["ObjectLockRetainUntilDate"] <= soon, key
    assert not [k for k in keys if k.startswith("_staging/")]  # nothing left behind...
    staged = s3.list_object_versions(Bucket=bucket, Prefix="_staging/").get("Versions", [])
    for version in staged:  # ...and no staging version the lifecycle could not expire
        head = s3.head_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        assert "ObjectLockMode" not in head, version["Key"]


def test_happy_path_two_tenants_a_day_each(run_stack):
    # with the optional S3 Object Lock on (issue 14): this is the run that covers it
    lock = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetentionDays": 30}
    stack = run_stack(StackConfig(tenants=2, calls=150, parameters=lock, max_batching_window=BATCHING_WINDOW))
    verdict = _complete_and_verified(stack, timeout=240)
    _assert_every_export_object_is_locked(stack, days=30)
    counts = verdict.counts
    assert counts["cdr_rows"]["actual"] == counts["cdr_rows"]["expected"] > 300  # >= 300 calls, several legs
    assert counts["recordings"]["verified"] == counts["recordings"]["expected"] > 100
    assert counts["sidecars"] == counts["recordings"]["expected"]
    assert set(counts["jobs"]) == {"COMPLETED"}
    assert counts["manifests"] == counts["jobs"]["COMPLETED"]
    assert counts["dlq_messages"] == 0
    metrics = stack.metrics()
    assert metrics["JobsCompleted"] == counts["jobs"]["COMPLETED"]
    assert metrics["RecordingsCopied"] == counts["recordings"]["expected"]
    assert not metrics.get("JobsFailed") and not metrics.get("RecordingsFailed")
    _sql_answers_are_the_truth(stack, counts)


def _sql_answers_are_the_truth(stack: LocalStack, counts: dict) -> None:
    """DuckDB over the exported objects, through views derived from the template's Glue tables,
    answers what the simulator's ground truth says (issue 14, "SQL on day one")."""
    answers = stack_answers(stack)
    assert differences(answers, truth_answers(stack)) == []
    assert {account for account, _day in answers.calls} == set(stack.tenants)
    assert sum(answers.calls.values()) >= 300
    assert sum(answers.recordings_per_call.values()) == counts["recordings"]["expected"]
    assert sum(n for n, _bytes in answers.bytes.values()) == counts["recordings"]["expected"]
    # every field a real manifest has is a column of the manifests table
    columns = set(json_fields(load_glue_tables(stack.config.template, stack.names.bucket)["manifests"]).values())
    s3 = stack.client("s3")
    for obj in s3.list_objects_v2(Bucket=stack.names.bucket, Prefix="manifests/")["Contents"]:
        document = json.loads(s3.get_object(Bucket=stack.names.bucket, Key=obj["Key"])["Body"].read())
        assert set(document) <= columns, obj["Key"]


def test_flaky_profile_gives_the_same_result_and_the_faults_happened(run_stack):
    stack = run_stack(StackConfig(tenants=2, calls=100, profile="flaky", seed=3, max_batching_window=BATCHING_WINDOW))
    _complete_and_verified(stack, timeout=240)
    counters = stack.sim.counters()
    flaky = PROFILES["flaky"]
    injected = {
        "errors_injected": flaky.error_rate,
        "resets_injected": flaky.reset_rate,
        "throttles_injected": flaky.throttle_rate,
        "callbacks_duplicated": flaky.duplicate_callback_rate,
        "expired_urls_issued": flaky.expired_url_rate,
        "late_recordings": flaky.late_recording_rate,
    }
    for name, rate in injected.items():
        assert rate > 0, f"the flaky profile no longer injects {name}"
        assert counters.get(name, 0) > 0, f"{name} never happened: {counters}"


def test_lost_callbacks_are_re_requested_and_the_export_completes(run_stack):
    stack = run_stack(
        StackConfig(
            tenants=1,
            calls=40,
            faults=Faults(lost_callback_rate=1.0),
            parameters={"WindowMinutes": 720},
            max_batching_window=BATCHING_WINDOW,
        )
    )
    # every first request's callback is lost; then CC-FS behaves again
    assert stack.sim.wait_for("callbacks_lost", at_least=2, timeout=60)
    lost = stack.sim.counters()["callbacks_lost"]
    stack.sim.set_faults(lost_callback_rate=0.0)
    verdict = _complete_and_verified(stack, timeout=200)
    assert verdict.counts["jobs"].get("SUPERSEDED", 0) >= lost
    requested = Counter((q["accountId"], q["beginTime"], q["endTime"]) for q in stack.sim.queries())
    lost_windows = [w for w, n in requested.items() if n >= 2]
    assert len(lost_windows) >= lost  # each lost window was asked for again ...
    assert max(requested.values()) <= 3  # ... within MaxAttempts
    assert stack.metrics().get("JobsReRequested", 0) >= lost


def test_download_crash_mid_batch_loses_and_duplicates_nothing(run_stack):
    stack = run_stack(StackConfig(tenants=1, calls=80, max_concurrency=2))
    # batches as the template makes them (its 5 s RecordingQueue window): the crash is mid-batch
    windows = batching_windows(stack)
    assert windows["DownloadFunction-RecordingQueue-1"] == (5.0, 5.0)
    assert "MaximumBatchingWindowInSeconds" not in stack.overrides
    fired = stack.set_worker_crash(after_records=3, queue="RecordingQueue")
    verdict = _complete_and_verified(stack, timeout=200)
    report = json.loads(fired.read_text())
    assert report["handed"] == 3 and report["batch"] > 3, report  # it really was mid-batch
    # nothing duplicated: one version per recording object (the bucket is versioned), one
    # REC item per recording, job counters exact
    s3 = stack.client("s3")
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stack.names.bucket, Prefix="recordings/"):
        versions.update(v["Key"] for v in page.get("Versions", []) if v["Key"].endswith(".wav"))
    assert versions and max(versions.values()) == 1, versions.most_common(3)
    items = stack.scan_jobs_table()
    recs = [i for i in items if str(i.get("sk", "")).startswith("REC#")]
    assert len(recs) == verdict.counts["recordings"]["expected"]
    for job in (i for i in items if i.get("sk") == "JOB"):
        assert job["recordings_done"] == job["recordings_total"], job
        assert not job.get("recordings_failed")


def test_backfill_over_four_days_is_split_at_three_days_and_requested_once(run_stack):
    stack = run_stack(StackConfig(tenants=1, calls=10, days=4, schedule=False, max_batching_window=BATCHING_WINDOW))
    begin = datetime.combine(stack.base_date, datetime.min.time())
    end = begin + timedelta(days=4) - timedelta(seconds=1)
    stack.send_backfill({"accountId": "acct001", "beginTime": f"{begin:{FMT}}", "endTime": f"{end:{FMT}}"})
    verdict = _complete_and_verified(stack, timeout=120)
    queries = stack.sim.queries()
    windows = sorted((q["beginTime"], q["endTime"]) for q in queries)
    assert Counter(windows).most_common(1)[0][1] == 1, "a window was requested twice"
    assert stack.sim.counters()["requests_by_op.queryBillData"] == len(windows) == 2
    assert windows[0][0] == f"{begin:{FMT}}" and windows[-1][1] == f"{end:{FMT}}"
    for (_, e), (next_b, _) in itertools.pairwise(windows):
        assert datetime.strptime(next_b, FMT) - datetime.strptime(e, FMT) == timedelta(seconds=1)
    for b, e in windows:
        assert datetime.strptime(e, FMT) - datetime.strptime(b, FMT) <= timedelta(days=3)
    assert verdict.counts["windows"] == 2
    assert verdict.counts["cdr_rows"]["expected"] > 0


def test_recording_whose_every_delivery_dies_ends_failed_in_its_manifest(run_stack):
    """Issue 15's reproduction: a recording whose deliveries all die outside the copier (killed
    like a timeout or running out of memory would kill them) once left no REC item: SQS moved its
    message to the RecordingDLQ and the job stayed DOWNLOADING, the recording named in no manifest.
    Now the dead-letter step gives it an outcome: FAILED with the reason, listed in the completed
    job's manifest, counted in RecordingsFailed (alarmed), and the RecordingDLQ drained."""
    stack = run_stack(StackConfig(tenants=1, calls=40, max_concurrency=2, max_batching_window=BATCHING_WINDOW))
    victim = next(c for c in stack.sim.calls(stack.tenants[0], stack.base_date) if len(c.recordings) == 1)
    stack.set_poison(f'"{victim.call_id}"')
    progress = stack.run_until_complete(240)
    assert progress.complete, f"not complete after 240s: {progress.pending[:5]}"
    stack.pause_schedule()

    verdict = stack.verify()
    (recording,) = victim.recordings
    missing = {p for p in verdict.problems if p.startswith("recording missing: ") and victim.call_id in p}
    assert len(missing) == 1, verdict.problems
    assert [p for p in verdict.problems if p not in missing] == []
    assert verdict.counts["recordings_named_in_manifests"] == verdict.counts["recordings"]["expected"]
    assert verdict.counts["recordings"]["verified"] == verdict.counts["recordings"]["expected"] - 1
    assert verdict.counts["dlq_messages"] == 0
    assert verdict.counts["jobs"]["PARTIAL"] == 1 and set(verdict.counts["jobs"]) == {"COMPLETED", "PARTIAL"}

    s3 = stack.client("s3")
    failures = []
    for job in (i for i in stack.scan_jobs_table() if i.get("sk") == "JOB"):
        body = s3.get_object(Bucket=stack.names.bucket, Key=f"manifests/{job['response_id']}.json")["Body"]
        failures += json.loads(body.read())["failures"]
    assert [(f["call_id"], f["file_name"]) for f in failures] == [(victim.call_id, recording.file_name)]
    assert failures[0]["reason"].startswith("gave up: SQS moved the message to the RecordingDLQ after 5 deliveries")
    metrics = stack.metrics()
    assert metrics["RecordingsFailed"] == 1 and metrics["RecordingDeadLettersSettled"] == 1
    assert metrics["JobsPartial"] == 1  # the job reads PARTIAL, not COMPLETED (alarmed)

    # What a failed chaos run writes (keep_for_diagnosis): with the outcome taken away again, the
    # recording is listed with the message ids and receive counts the workers logged for its call.
    assert stack.recordings_without_outcome() == []
    ddb = stack.client("dynamodb")
    rid = next(i["response_id"] for i in stack.scan_jobs_table() if i.get("job_status") == "PARTIAL")
    stem = recording.file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    ddb.delete_item(
        TableName=stack.names.jobs_table, Key={"pk": {"S": f"JOB#{rid}"}, "sk": {"S": f"REC#{victim.call_id}#{stem}"}}
    )
    ddb.update_item(
        TableName=stack.names.jobs_table,
        Key={"pk": {"S": f"JOB#{rid}"}, "sk": {"S": "JOB"}},
        UpdateExpression="SET job_status = :d",
        ExpressionAttributeValues={":d": {"S": "DOWNLOADING"}},
    )
    state = stack.diagnose()
    (pending,) = json.loads((state / "pending-recordings.json").read_text())
    assert (pending["response_id"], pending["call_id"], pending["file_name"]) == (
        rid,
        victim.call_id,
        recording.file_name,
    )
    settled = [e for e in pending["log"] if e.get("message") == "recording failed"]
    assert settled and settled[0]["message_id"] and settled[0]["receive_count"]
    assert len((state / "jobs-table.jsonl").read_text().splitlines()) == len(stack.scan_jobs_table())
    assert not metrics.get("JobsFailed")
