"""End to end, once per bill format protocol §4 allows (issue 12): the simulator writes the variant,
the real handlers export it, and ``LocalStack.verify`` compares every CDR and index row, every
recording, against the simulator's ground truth.

One window per tenant-day (``WindowMinutes`` 1440) with 20 calls, so every bill has rows of both
kinds: no entry may be reported unrecognised or empty for a valid variant. One more run adds an
entry no bill reader should take for data and checks it is counted and named, not ignored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.stack import LocalStack, StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]

TIMEOUT = 200
VARIANTS: dict[str, dict[str, Any]] = {
    "plain-names": {"bill_entry_names": "plain"},
    "upper-case-extension": {"csv_extension": ".CSV"},
    "utf8-bom": {"csv_encoding": "utf-8-sig"},
    "gb18030": {"csv_encoding": "gb18030"},
    "lf-line-ends": {"csv_line_ending": "\n"},
    "no-header": {"csv_header": "none"},
    "spaced-upper-header": {"csv_header": "spaced-upper"},
}


def _stack(run_stack: Any, simulator: dict[str, Any]) -> LocalStack:
    return run_stack(
        StackConfig(
            tenants=1,
            calls=20,
            parameters={"WindowMinutes": 1440},
            simulator=simulator,
            max_batching_window=BATCHING_WINDOW,
        )
    )


def _export(stack: LocalStack) -> tuple[Any, dict[str, float], list[dict[str, Any]]]:
    progress = stack.run_until_complete(TIMEOUT)
    assert progress.complete, f"not complete after {TIMEOUT}s: {progress.pending[:5]}"
    stack.pause_schedule()
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.counts["cdr_rows"]["expected"] > 20 and verdict.counts["index_rows"]["expected"] > 0
    s3 = stack.client("s3")
    manifests = []
    for item in stack.scan_jobs_table():
        if item.get("sk") == "JOB" and item.get("job_status") in ("COMPLETED", "PARTIAL"):
            body = s3.get_object(Bucket=stack.names.bucket, Key=f"manifests/{item['response_id']}.json")["Body"]
            manifests.append({"job": item, "manifest": json.loads(body.read())})
    assert manifests
    return verdict, stack.metrics(), manifests


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bill_variant_is_exported_completely(run_stack: Any, variant: str) -> None:
    stack = _stack(run_stack, VARIANTS[variant])
    _verdict, metrics, jobs = _export(stack)
    assert metrics.get("BillRows", 0) > 0
    assert metrics.get("BillEntriesUnrecognised", 0) == 0 and metrics.get("BillEntriesEmpty", 0) == 0
    assert {j["job"]["job_status"] for j in jobs} == {"COMPLETED"}
    assert not metrics.get("BadRows")
    for job in jobs:
        assert job["manifest"]["unexpected_entries"] == [] and job["manifest"]["empty_entries"] == []
        if variant == "plain-names":  # un-numbered entries land as {responseId}-0.csv
            keys = [c["key"] for c in job["manifest"]["cdr"] + job["manifest"]["recording_index"]]
            assert keys and all(k.endswith(f"/{job['job']['response_id']}-0.csv") for k in keys), keys


def test_an_unclassifiable_entry_is_counted_and_named(run_stack: Any) -> None:
    stack = _stack(run_stack, {"bill_extra_entries": ["readme.txt"]})
    _verdict, metrics, jobs = _export(stack)  # the real entries are still exported in full
    assert metrics["BillEntriesUnrecognised"] == len(jobs) >= 1
    assert metrics.get("BillEntriesEmpty", 0) == 0
    for job in jobs:
        assert job["manifest"]["unexpected_entries"] == ["readme.txt"]
        assert job["job"]["unexpected_entries"] == ["readme.txt"]
        assert job["job"]["job_status"] == job["manifest"]["status"] == "PARTIAL"  # rows not exported: never COMPLETED
    assert metrics["JobsPartial"] == len(jobs)
