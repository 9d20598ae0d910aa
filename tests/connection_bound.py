"""The CC-FS connection bound template.yaml states, computed from what the template configures.

template.yaml (comment above ``BillDownloadConcurrency``, and each parameter's description) promises
at most ``3 + BillDownloadConcurrency + RecordingDownloadConcurrency x RecordingThreads`` CC-FS
requests in flight. What makes that true is spread over the template: each SQS mapping's
``MaximumConcurrency``, the download function's ``RECORDING_CONCURRENCY`` threads and the schedule.
:func:`template_bound` adds those up, so a test can hold the stated formula to the template
(tests/unit/test_ccfs_connection_bound.py) and the running stack to the template
(tests/e2e/test_ccfs_connections.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# CC-FS requests one invocation of a mapping can have open at once; None: one per thread
# (RECORDING_CONCURRENCY). A mapping missing here fails the tests: say what its handler does.
PER_INVOCATION: dict[tuple[str, str], int | None] = {
    ("RequestExportFunction", "RequestQueue"): 1,  # one window per message, requested in turn
    ("DownloadFunction", "BillQueue"): 1,  # one bill ZIP per message, one request at a time
    ("DownloadFunction", "RecordingQueue"): None,  # each thread: getRecordFileUrlFromObs or the fallback
    ("DownloadFunction", "RecordingDLQ"): 0,  # settles outcomes in DynamoDB, never calls CC-FS
}
TICK = 1  # the planning tick requests its windows one after another


def template_bound(model: Any, env: Mapping[str, str]) -> int:
    """``model``: a ``local.stack.cfn.StackModel``; ``env``: DownloadFunction's resolved environment."""
    threads = int(env.get("RECORDING_CONCURRENCY") or 1)
    bound = 0
    for mapping in model.mappings:
        if not mapping.enabled:
            continue
        per_invocation = PER_INVOCATION[(mapping.function, mapping.queue)]
        assert mapping.maximum_concurrency is not None, f"{mapping.logical_id}: no MaximumConcurrency, no bound"
        bound += mapping.maximum_concurrency * (threads if per_invocation is None else per_invocation)
    return bound + TICK * sum(1 for schedule in model.schedules if schedule.function == "RequestExportFunction")


def stated_bound(parameters: Mapping[str, Any]) -> int:
    """The formula the template's descriptions state."""
    value = {
        k: int(parameters[k]) for k in ("BillDownloadConcurrency", "RecordingDownloadConcurrency", "RecordingThreads")
    }
    return 3 + value["BillDownloadConcurrency"] + value["RecordingDownloadConcurrency"] * value["RecordingThreads"]
