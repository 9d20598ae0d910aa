"""End to end: tenants are separate developer accounts (issue 12 §4). Through the local stack (the
product's per-tenant secret, the API front, the real callback function), a callback signed by tenant A
for tenant B's job is refused and changes nothing; B's own callback then completes the job."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from ccfs.auth import sign
from local.ccfs_simulator import Faults
from local.stack import StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, needs_handlers, wait_until

pytestmark = [pytest.mark.e2e, needs_handlers]


def _post_callback(url: str, body: bytes, ak: str, sk: str, ca_file: str) -> httpx.Response:
    """As CC-FS posts it: to the stack's public callback URL, trusting the API's chain (its truststore)."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json;charset=UTF-8", "Content-Length": str(len(body)), "Host": parts.netloc}
    authorization = sign(ak, sk, "POST", parts.path, headers, body, timestamp=datetime.now(UTC))
    return httpx.post(
        url,
        content=body,
        headers={**headers, "Authorization": authorization},
        timeout=30,
        verify=ssl.create_default_context(cafile=ca_file),
    )


def test_a_callback_signed_by_tenant_a_for_tenant_bs_job_is_refused(run_stack):
    stack = run_stack(
        StackConfig(
            tenants=2,
            calls=20,
            schedule=False,
            callback_timeout_minutes=30,  # no re-request while the test runs
            faults=Faults(lost_callback_rate=1.0),  # CC-FS never calls back: the test does
            max_batching_window=BATCHING_WINDOW,
        )
    )
    tenant_a, tenant_b = stack.tenants
    assert stack.separate_keys and stack.zone_of(tenant_a) != stack.zone_of(tenant_b)
    secret = json.loads(
        stack.client("secretsmanager").get_secret_value(SecretId=stack.names.secret_arn)["SecretString"]
    )
    assert set(secret["tenants"]) == {tenant_a, tenant_b}  # the per-tenant map form
    assert secret["tenants"][tenant_b]["timezone"] == str(stack.zone_of(tenant_b))

    day = stack.base_date
    stack.send_backfill({"accountId": tenant_b, "beginTime": f"{day} 00:00:00", "endTime": f"{day} 23:59:59"})

    def requested_job() -> dict | None:
        jobs = [i for i in stack.scan_jobs_table() if i.get("sk") == "JOB"]
        return jobs[0] if len(jobs) == 1 and jobs[0].get("job_status") == "REQUESTED" else None

    assert wait_until(lambda: requested_job() is not None, timeout=60), stack.scan_jobs_table()
    job = requested_job()
    assert job is not None and job["tenant"] == tenant_b
    (query,) = stack.sim.queries()
    assert query["responseId"] == job["response_id"] and query["status"] == "lost"
    before = stack.scan_jobs_table()

    a_ak, a_sk = stack.sim.tenant_keys(tenant_a)
    for account in (tenant_b, ""):  # naming B, or naming no tenant: both are B's job
        body = stack.sim.callback_body({**query, "accountId": account})
        refused = _post_callback(stack.names.callback_url, body, a_ak, a_sk, stack.names.api_ca_file)
        assert refused.status_code == 403, refused.text
    assert stack.scan_jobs_table() == before  # nothing written
    assert stack.queue_depths()["BillQueue"] == (0, 0)  # nothing queued
    assert stack.metrics().get("CallbackTenantMismatch") == 2

    b_ak, b_sk = stack.sim.tenant_keys(tenant_b)
    accepted = _post_callback(
        stack.names.callback_url, stack.sim.callback_body(query), b_ak, b_sk, stack.names.api_ca_file
    )
    assert accepted.status_code == 200, accepted.text
    progress = stack.run_until_complete(120)
    assert progress.complete, progress.pending[:5]
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.counts["jobs"] == {"COMPLETED": 1}
