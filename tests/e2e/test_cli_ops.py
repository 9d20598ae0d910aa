"""End to end: the operators' commands ``status``, ``backfill --wait``, ``retry-failed`` and ``reexport``
against one local stack (issue 14), and request_export refusing an invalid backfill at once.

One stack for the module (2 tenants, each its own developer account and zone, a few calls on one
day, no schedule: only what the test sends is exported). A share of the recordings is "late"
(``Faults.late_recording_rate``) with a sync lag far beyond the scaled-down grace period, so the first
export ends PARTIAL with failed recordings; the simulator then syncs them and ``retry-failed`` turns
the job COMPLETED. The CLI runs in-process on this tree (``click.testing.CliRunner`` on
``aicc_export.main.cli``) with ``--local`` pointing at the stack's ``make serve`` JSON line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from local.ccfs_simulator import Faults
from local.stack import LocalStack, StackConfig
from local.stack.__main__ import _serve_info
from tests.e2e.conftest import BATCHING_WINDOW, module_stack, needs_handlers, wait_until

pytestmark = [pytest.mark.e2e, needs_handlers]

WAIT = 120  # seconds any one step may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    faults = Faults(late_recording_rate=1.0, sync_lag_seconds=3600, fault_seed=3)  # every recording late
    config = StackConfig(
        tenants=2,
        calls=6,
        schedule=False,
        faults=faults,
        recording_grace_seconds=4,
        max_batching_window=BATCHING_WINDOW,
    )
    with module_stack(config) as running:
        yield running


@pytest.fixture(scope="module")
def line(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "serve.json"
    path.write_text(json.dumps(_serve_info(stack)) + "\n", encoding="utf-8")
    return path


def cli(line: Path, *args: str) -> Result:
    from aicc_export.main import cli as group

    return CliRunner().invoke(group, ["--local", str(line), *args], catch_exceptions=False)


def as_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def jobs(stack: LocalStack) -> list[dict[str, Any]]:
    return [i for i in stack.scan_jobs_table() if i.get("sk") == "JOB"]


def drain(stack: LocalStack, queue: str) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    url = stack.names.queues[queue]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def test_operator_commands_against_the_local_stack(stack: LocalStack, line: Path) -> None:
    tenant, other = stack.tenants
    day = stack.base_date.isoformat()

    # -- status on a fresh stack: nothing exported, nothing wrong
    fresh = cli(line, "status")
    assert fresh.exit_code == 0, fresh.output
    assert f"tenant {tenant} ({stack.zone_of(tenant)})" in fresh.stdout and f"tenant {other}" in fresh.stdout
    assert "no complete window yet" in fresh.stdout and "[PASS] dead-letter queues empty" in fresh.stdout

    # -- the CLI validates before sending anything
    several = cli(line, "backfill", day, day)
    assert several.exit_code == 2 and "pass --tenant" in several.output
    unknown = cli(line, "backfill", day, day, "--tenant", "nobody")
    assert unknown.exit_code == 2 and "not one of this stack's tenants" in unknown.output
    backwards = cli(line, "backfill", day, "2020-01-01", "--tenant", tenant)
    assert backwards.exit_code == 2 and "is before FROM" in backwards.output
    future = cli(line, "backfill", day, "2999-01-01", "--tenant", tenant)
    assert future.exit_code == 2 and "is not over yet" in future.output
    assert stack.queue_depths()["RequestQueue"] == (0, 0)

    # -- request_export refuses a message without accountId on this 2-tenant stack at once, with the reason
    sqs = stack.client("sqs")
    bad = json.dumps({"beginTime": f"{day} 00:00:00", "endTime": f"{day} 23:59:59"})
    sqs.send_message(QueueUrl=stack.names.request_queue_url, MessageBody=bad)
    assert wait_until(lambda: stack.queue_depths()["RequestDLQ"][0] == 1, WAIT)
    refused = cli(line, "--json", "status")
    assert refused.exit_code == 1
    report = as_json(refused)
    assert [r["body"] for r in report["data"]["refusedBackfills"]] == [bad]
    assert "accountId: required when several tenants are configured" in report["data"]["refusedBackfills"][0]["reason"]
    assert {c["name"]: c["ok"] for c in report["checks"]}["dead-letter queues empty"] is False
    assert stack.metrics().get("BackfillRefused") == 1
    assert jobs(stack) == []  # nothing requested
    assert len(drain(stack, "RequestDLQ")) == 1

    # -- backfill --wait: one window (the day), exported PARTIAL (late recordings never sync in the grace period)
    first = cli(line, "backfill", day, day, "--tenant", tenant, "--wait", "--timeout", str(WAIT))
    assert first.exit_code == 1, first.output
    window = f"{day} 00:00:00|{day} 23:59:59"
    assert f"tenant {tenant} ({stack.zone_of(tenant)}): 1 window(s) sent to RequestQueue" in first.stdout
    assert f"  {window}  PARTIAL" in first.stdout
    assert "[PASS] every window done" in first.stdout and "[FAIL] nothing failed" in first.stdout
    assert "windows" in first.stderr  # the progress bar
    (partial,) = jobs(stack)
    assert partial["job_status"] == "PARTIAL" and partial["recordings_failed"] >= 1
    late = int(partial["recordings_failed"])

    # -- status: the failed recordings with their reasons, exit 1 and what to do
    broken = cli(line, "--json", "status", "--tenant", tenant)
    assert broken.exit_code == 1
    (summary,) = as_json(broken)["data"]["tenants"]
    assert summary["jobs"] == {"PARTIAL": 1}
    # the window's export ended (its recordings' failures are listed, and alarmed, on their own)
    assert summary["freshness"]["window"] == window and summary["freshness"]["ageSeconds"] > 0
    assert len(summary["failedRecordings"]) == late
    assert all("not synced to CC-FS within the" in f["reason"] for f in summary["failedRecordings"])
    text = cli(line, "status", "--tenant", tenant)
    assert text.exit_code == 1 and "[FAIL] no failed recordings" in text.stdout
    assert f"-> send them again: `aicc-export retry-failed --tenant {tenant}`" in text.stdout

    # -- retry-failed: CC-FS has them now; the job completes; a second run finds nothing to do
    stack.sim.set_faults(sync_lag_seconds=0)
    retried = cli(line, "retry-failed", "--tenant", tenant)
    assert retried.exit_code == 0, retried.output
    assert f"job {partial['response_id']} (PARTIAL): {late} sent again, 0 already in flight" in retried.stdout
    assert wait_until(lambda: jobs(stack)[0]["job_status"] == "COMPLETED", WAIT, interval=0.5)
    (done,) = jobs(stack)
    assert done["recordings_failed"] == 0 and done["recordings_done"] == done["recordings_total"]
    manifest = json.loads(
        stack.client("s3")
        .get_object(Bucket=stack.names.bucket, Key=f"manifests/{done['response_id']}.json")["Body"]
        .read()
    )
    assert manifest["status"] == "COMPLETED" and manifest["failures"] == []
    again = cli(line, "--json", "retry-failed", "--tenant", tenant)
    assert again.exit_code == 0 and as_json(again)["data"]["jobs"] == []
    healthy = cli(line, "status", "--tenant", tenant)
    assert healthy.exit_code == 0, healthy.output
    assert f"(newest complete window {window})" in healthy.stdout and "COMPLETED 1" in healthy.stdout

    # -- a plain backfill of the exported day says so and requests nothing
    repeat = cli(line, "backfill", day, day, "--tenant", tenant, "--wait", "--timeout", str(WAIT))
    assert repeat.exit_code == 0, repeat.output
    assert "(exported already: skipped; `aicc-export reexport` requests it again)" in repeat.stdout
    assert wait_until(lambda: stack.metrics().get("BackfillWindowsAlreadyExported") == 1, WAIT)
    assert len(jobs(stack)) == 1

    # -- reexport: requested again, the window's CDR objects replaced, recordings not duplicated
    s3 = stack.client("s3")

    def keys(prefix: str) -> list[str]:
        return sorted(o["Key"] for o in stack.list_objects(prefix))

    recordings_before = keys("recordings/")
    old_cdr = keys("cdr/")
    assert old_cdr and all(done["response_id"] in k for k in old_cdr)
    redo = cli(line, "--json", "reexport", "--date", day, "--tenant", tenant, "--wait", "--timeout", str(WAIT))
    assert redo.exit_code == 0, redo.output
    result = as_json(redo)
    assert [s["window"] for s in result["data"]["sent"]] == [window]
    (state,) = result["data"]["windowStates"]
    assert state["jobStatus"] == "COMPLETED" and state["responseId"] != done["response_id"]
    new_cdr = keys("cdr/")
    assert new_cdr and all(state["responseId"] in k for k in new_cdr), new_cdr  # the old ones are gone
    assert keys("recordings/") == recordings_before
    assert stack.metrics().get("WindowsReexported") == 1
    old = next(j for j in jobs(stack) if j["response_id"] == done["response_id"])
    assert old["replaced_by"] == state["responseId"]
    win = next(i for i in stack.scan_jobs_table() if i.get("sk") == window and tenant in str(i.get("pk")))
    assert win["reexports"] == 1 and win["previous_response_id"] == done["response_id"]
    assert s3.list_objects_v2(Bucket=stack.names.bucket, Prefix=f"manifests/{done['response_id']}")["KeyCount"] == 0
    final = cli(line, "--json", "status", "--tenant", tenant)
    assert final.exit_code == 0
    (after,) = as_json(final)["data"]["tenants"]
    assert after["reexportsInFlight"] == [] and after["jobs"] == {"COMPLETED": 2}
