"""Two trust stores, end to end (issue 11 §2): the local stack configures them as a deployment
would — CC-FS's CA through the CA-bundle SSM parameter, the object store's CA in the functions'
"system" store (``SSL_CERT_FILE`` = certifi + its CA) — each server under its own name and CA, so
a product that fetches recordings with CC-FS's trust copies none of them."""

from __future__ import annotations

import json

import certifi
import pytest

from local.stack import StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, batching_windows, needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]


def _manifest_failures(stack) -> list[dict]:
    s3 = stack.client("s3")
    failures: list[dict] = []
    for job in (i for i in stack.scan_jobs_table() if i.get("sk") == "JOB"):
        body = s3.get_object(Bucket=stack.names.bucket, Key=f"manifests/{job['response_id']}.json")["Body"]
        failures += json.loads(body.read())["failures"]
    return failures


def test_each_peer_under_its_own_name_and_ca_and_recordings_come_from_the_object_store(run_stack):
    stack = run_stack(StackConfig(tenants=1, calls=30, max_batching_window=BATCHING_WINDOW))
    names = stack.names
    assert names.ccfs_base_url == "https://ccfs.sim.internal:28443"
    assert stack.sim.obs_base_url == "https://obs.sim.internal"
    assert names.callback_url == f"https://{stack.api_domain}/v1/ccfs/callback"
    assert stack.sim.obs_ca_bundle != stack.sim.ca_bundle
    download_env = stack.function_env("DownloadFunction")
    assert download_env["RECORDING_URL_HOST_SUFFIXES"] == "obs.sim.internal"  # the object store, not CC-FS
    assert download_env["CCFS_CA_BUNDLE_PARAM"] == names.ca_param and not download_env["RECORDING_CA_BUNDLE_PARAM"]

    # the window the stack's pollers batch with: at most BATCHING_WINDOW, said in the deviations
    windows = batching_windows(stack)
    assert windows["DownloadFunction-RecordingQueue-1"] == (BATCHING_WINDOW, 5.0)
    assert all(used == min(template, BATCHING_WINDOW) for used, template in windows.values()), windows
    assert "MaximumBatchingWindowInSeconds" in stack.overrides
    progress = stack.run_until_complete(180)
    assert progress.complete, progress.pending[:5]
    stack.pause_schedule()
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)
    expected = verdict.counts["recordings"]["expected"]
    assert verdict.counts["recordings"]["verified"] == expected > 5
    counters = stack.sim.counters()
    # every recording through its pre-signed URL on the object store, none by the CC-FS fallback
    assert counters["obs_downloads"] == expected
    assert not stack.metrics().get("RecordingFallbacks")
    # CC-FS's callbacks reached the API front under its execute-api name, over TLS, and verified
    assert counters["callbacks_acked"] >= verdict.counts["jobs"]["COMPLETED"]
    assert not stack.metrics().get("CallbackSignatureRejected")


def test_one_trust_for_both_copies_no_recording(run_stack):
    """The recording client given CC-FS's trust — its CA bundle parameter as the recording bundle
    and no object-store CA in the system store, which is what fetching through the CC-FS client
    amounted to — fails TLS on every recording; CC-FS calls (their own trust) still work."""
    config = StackConfig(
        tenants=1,
        calls=8,
        parameters={"RecordingCaBundleParameter": f"/{StackConfig().stack_name}/ccfs-ca"},
        env={"SSL_CERT_FILE": certifi.where()},
        max_batching_window=BATCHING_WINDOW,
    )
    stack = run_stack(config)
    progress = stack.run_until_complete(240)
    assert progress.complete, progress.pending[:5]
    stack.pause_schedule()
    verdict = stack.verify()
    assert not verdict.ok
    counts = verdict.counts
    assert counts["cdr_rows"]["actual"] == counts["cdr_rows"]["expected"] > 0  # CC-FS itself was fine
    assert counts["recordings"]["expected"] > 0 and counts["recordings"]["verified"] == 0
    assert stack.sim.counters().get("obs_downloads", 0) == 0
    failures = _manifest_failures(stack)
    assert len(failures) == counts["recordings"]["expected"]
    assert all("TLS certificate verification failed" in f["reason"] for f in failures), failures[:2]
