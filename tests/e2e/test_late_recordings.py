"""End to end: recordings that reach CC-FS late (issue 12 §3; seed 001: "by a scheduled task").

The simulator leaves a share of recordings unsynced until ``sync_lag_seconds`` after they are first
asked for: every recording operation answers 0300012 (no data) until then. The exporter must ask again
with growing delays for the grace period (``RecordingGraceHours``, scaled down locally to
``StackConfig.recording_grace_seconds``) and then copy them; one that never arrives in time ends
FAILED with the reason, in its job's manifest, the job PARTIAL.
"""

from __future__ import annotations

import json
import re

import pytest

from local.ccfs_simulator import Faults
from local.stack import StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]

TIMEOUT = 200


def test_recordings_synced_late_are_all_copied(run_stack):
    faults = Faults(late_recording_rate=0.3, sync_lag_seconds=4, fault_seed=5)
    stack = run_stack(
        StackConfig(
            tenants=1, calls=30, faults=faults, recording_grace_seconds=120, max_batching_window=BATCHING_WINDOW
        )
    )
    progress = stack.run_until_complete(TIMEOUT)
    assert progress.complete, f"not complete after {TIMEOUT}s: {progress.pending[:5]}"
    stack.pause_schedule()

    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)
    assert set(verdict.counts["jobs"]) == {"COMPLETED"}
    assert verdict.counts["recordings"]["verified"] == verdict.counts["recordings"]["expected"] > 0
    counters = stack.sim.counters()
    assert counters["late_recordings"] >= 3, "the run needs late recordings to prove anything"
    assert counters["not_synced_answers"] >= counters["late_recordings"]
    metrics = stack.metrics()
    assert metrics["RecordingsNotYetSynced"] >= counters["late_recordings"]
    assert not metrics.get("RecordingsFailed") and not metrics.get("JobsPartial")


def test_a_recording_that_never_syncs_in_the_grace_period_fails_with_the_reason(run_stack):
    faults = Faults(late_recording_rate=0.2, sync_lag_seconds=3600, fault_seed=3)
    stack = run_stack(
        StackConfig(tenants=1, calls=20, faults=faults, recording_grace_seconds=6, max_batching_window=BATCHING_WINDOW)
    )
    progress = stack.run_until_complete(TIMEOUT)
    assert progress.complete, f"not complete after {TIMEOUT}s: {progress.pending[:5]}"
    stack.pause_schedule()

    late = stack.sim.counters()["late_recordings"]
    assert late >= 2, "the run needs late recordings to prove anything"
    verdict = stack.verify()
    missing = [p for p in verdict.problems if p.startswith("recording missing: ")]
    assert len(missing) == late and [p for p in verdict.problems if p not in missing] == []
    assert verdict.counts["recordings_named_in_manifests"] == verdict.counts["recordings"]["expected"]
    assert verdict.counts["dlq_messages"] == 0
    assert verdict.counts["jobs"].get("PARTIAL", 0) >= 1

    s3 = stack.client("s3")
    failures = []
    for job in (i for i in stack.scan_jobs_table() if i.get("sk") == "JOB"):
        body = s3.get_object(Bucket=stack.names.bucket, Key=f"manifests/{job['response_id']}.json")["Body"]
        failures += json.loads(body.read())["failures"]
    assert len(failures) == late
    for failure in failures:
        assert "not synced to CC-FS within the" in failure["reason"] and "0300012" in failure["reason"]
        tries = re.search(r"\((\d+) tries since", failure["reason"])
        assert tries and int(tries[1]) >= 2, failure["reason"]  # asked again before giving up
    metrics = stack.metrics()
    assert metrics["RecordingsFailed"] == late and metrics["RecordingsNotYetSynced"] >= late
