"""The bound on connections toward CC-FS, measured where CC-FS would see it.

template.yaml promises at most ``1 (planning tick) + 2 (RequestQueue consumers) +
BillDownloadConcurrency + RecordingDownloadConcurrency x RecordingThreads`` CC-FS requests in flight
at once. The local stack runs one worker per concurrent consumer the template allows and the
download function with the template's thread count; the simulator counts the CC-FS operations it
is serving at once (``Simulator.concurrency``). A latency on every CC-FS and object-storage
request keeps requests overlapping, so the peak is what the stack's parallelism makes it.

The bound is on requests in flight, i.e. connections in use. The simulator also counts open TCP
connections (``connections_peak``), idle keep-alive ones included; that count is not asserted: a
client that retires an expired keep-alive connection opens the next one before the server thread
of the old one has seen it close, so it can briefly read one or two high.
"""

from __future__ import annotations

from collections import Counter

import pytest

from local.ccfs_simulator import Faults
from local.stack import StackConfig
from tests.connection_bound import stated_bound, template_bound
from tests.e2e.conftest import needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]

# A small bound: 1 + 2 + 2 + 2 x 2 = 9. The previous template (MaxConcurrency on both download
# mappings, 8 threads) allowed 1 + 2 + 2 + 2 x 8 = 21 at its minimum MaxConcurrency=2 and 48 at its
# default 5: this run, on that template, saw 18 and 19 CC-FS requests at once.
PARAMETERS = {"BillDownloadConcurrency": 2, "RecordingDownloadConcurrency": 2, "RecordingThreads": 2}


def test_ccfs_never_serves_more_requests_at_once_than_the_template_allows(run_stack):
    stack = run_stack(
        StackConfig(
            tenants=2,
            calls=60,
            parameters=PARAMETERS,
            faults=Faults(latency_ms=400),  # every CC-FS and object-storage request takes 400 ms
            max_concurrency=None,  # the template's consumers, not fewer
        )
    )
    assert stack.model is not None
    bound = template_bound(stack.model, stack.function_env("DownloadFunction"))
    assert bound == stated_bound(PARAMETERS) == 1 + 2 + 2 + 2 * 2
    # the local stack honours the template: one worker per consumer, the template's threads
    workers = Counter(c.name.rsplit("-", 1)[0] for c in stack.children() if c.name.split("-")[-1].isdigit())
    assert workers["DownloadFunction-BillQueue"] == PARAMETERS["BillDownloadConcurrency"]
    assert workers["DownloadFunction-RecordingQueue"] == PARAMETERS["RecordingDownloadConcurrency"]
    assert workers["RequestExportFunction-RequestQueue"] == 2
    assert stack.function_env("DownloadFunction")["RECORDING_CONCURRENCY"] == str(PARAMETERS["RecordingThreads"])

    progress = stack.run_until_complete(240)
    assert progress.complete, f"not complete after 240s: {progress.pending[:5]}"
    stack.pause_schedule()
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)

    seen = stack.sim.concurrency()
    counters = stack.sim.counters()
    # enough work to fill every consumer: a bill per tenant and hour, dozens of recordings
    assert counters["requests_by_op.downloadBillFile"] >= 40, counters
    assert counters["requests_by_op.getRecordFileUrlFromObs"] >= 40, counters
    assert seen["ccfs_peak"] <= bound, (seen, bound)

    # not blind: requests did overlap, beyond what one recording invocation's threads can open
    assert seen["ccfs_peak"] > PARAMETERS["RecordingThreads"], seen
    assert seen["obs_peak"] <= PARAMETERS["RecordingDownloadConcurrency"] * PARAMETERS["RecordingThreads"], seen
