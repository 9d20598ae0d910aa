"""The three handlers in-process against the CC-FS simulator and moto, from a schedule tick to S3.

No worker processes and no moto server here (that is tests/e2e): moto's in-process mock, the real
simulator over TLS with its CA bundle in SSM, the ak/sk in Secrets Manager, and a small HTTP
receiver that plays API Gateway for the callback (all in ``pipeline_harness.py``). The assertions
compare S3 with the simulator's ground truth independently of the local stack's own verifier.
"""

from __future__ import annotations

import pytest

from local.ccfs_simulator import Faults, TenantSpec
from tests.integration.pipeline_harness import ZONE, assert_s3_equals_truth, demo_day

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.pipeline_harness"]  # the pipeline_factory fixture


def test_schedule_tick_to_s3_equals_ground_truth(pipeline_factory):
    tenants = [TenantSpec("acct001", tz=ZONE, calls_per_day=30), TenantSpec("acct002", tz=ZONE, calls_per_day=20)]
    day = demo_day()
    pipe = pipeline_factory(tenants, day)
    pipe.run()
    counts = assert_s3_equals_truth(pipe, tenants, day)
    # one window per tenant per day since the start: the export day, the next, maybe today's
    assert counts["jobs"] >= 2 * len(tenants)
    assert pipe.sim.counters()["callbacks_acked"] >= counts["jobs"]
    assert set(pipe.receiver.statuses) == {200}

    # A second tick requests nothing new: windows are claimed once.
    queries = pipe.sim.counters()["requests_by_op.queryBillData"]
    pipe.tick()
    assert pipe.sim.counters()["requests_by_op.queryBillData"] == queries


def test_faults_and_a_crash_mid_batch_lose_and_duplicate_nothing(pipeline_factory):
    tenants = [TenantSpec("acct001", tz=ZONE, calls_per_day=40)]
    day = demo_day()
    faults = Faults(
        error_rate=0.1, reset_rate=0.1, duplicate_callback_rate=1.0, expired_url_rate=0.2, throttle_rate=0.05
    )
    pipe = pipeline_factory(tenants, day, faults)
    pipe.crash_after = 3  # the first batch of several records dies after three of them
    pipe.run()
    assert_s3_equals_truth(pipe, tenants, day)
    counters = pipe.sim.counters()
    assert counters.get("callbacks_duplicated", 0) > 0  # the counters omit zeros
    assert counters.get("expired_urls_issued", 0) > 0
    assert counters.get("errors_injected", 0) + counters.get("resets_injected", 0) > 0
    assert pipe.crash_after is None, "the crash was injected"
