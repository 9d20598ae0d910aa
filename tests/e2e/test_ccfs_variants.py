"""End to end against the CC-FS shapes the vendor documentation leaves open (issue 12 §2).

One small stack per simulator variant: name-free (UUID) recording URLs with several recordings per
call, each URL-list shape, ``url`` inside or beside ``resultData``, short and mixed responseIds, and a
share of replies with an undocumented resultCode. Each run must complete and match the simulator's
ground truth byte for byte (``LocalStack.verify``: every row, every recording by sha256), so a
recording stored under another recording's name fails the run.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.ccfs_simulator import Faults
from local.stack import StackConfig
from tests.e2e.conftest import BATCHING_WINDOW, needs_handlers

pytestmark = [pytest.mark.e2e, needs_handlers]

TIMEOUT = 200
# Every answered call with a long enough talk is recorded in two segments: plenty of calls with
# several name-free URLs even in a 20-call run.
SEVERAL = {"multi_recording_rate": 1.0, "url_naming": "uuid"}

VARIANTS = [
    # ... and the second file of each such call has the first one's name in another agent's directory:
    # two recordings whose paths differ only by directory, each exported under its own key.
    pytest.param(
        {**SEVERAL, "url_list_style": "comma", "response_id_style": "uuid", "shared_name_rate": 1.0},
        None,
        id="comma-uuid-shared-names",
    ),
    pytest.param(
        {**SEVERAL, "url_list_style": "semicolon", "url_placement": "top", "response_id_style": "short"},
        None,
        id="semicolon-top-short",
    ),
    pytest.param({**SEVERAL, "url_list_style": "newline", "response_id_style": "mixed"}, None, id="newline-mixed"),
    pytest.param(
        {**SEVERAL, "url_list_style": "space", "url_placement": "top"},
        Faults(unknown_code_rate=0.05, fault_seed=11),
        id="space-top-unknown-codes",
    ),
]


@pytest.mark.parametrize(("simulator", "faults"), VARIANTS)
def test_variant_exports_exactly_the_ground_truth(run_stack, simulator: dict[str, Any], faults: Faults | None):
    stack = run_stack(
        StackConfig(tenants=1, calls=20, simulator=simulator, faults=faults, max_batching_window=BATCHING_WINDOW)
    )

    progress = stack.run_until_complete(TIMEOUT)
    assert progress.complete, f"not complete after {TIMEOUT}s: {progress.pending[:5]}"
    stack.pause_schedule()
    verdict = stack.verify()
    assert verdict.ok, "\n".join(verdict.problems)

    counts = verdict.counts
    assert set(counts["jobs"]) == {"COMPLETED"}
    assert counts["recordings"]["verified"] == counts["recordings"]["expected"] > 0
    calls = stack.sim.calls("acct001", stack.base_date)
    assert sum(len(c.recordings) >= 2 for c in calls) >= 3, "the variant needs calls with several recordings"
    if simulator.get("shared_name_rate"):
        stems = [[r.file_name.rsplit("/", 1)[-1] for r in c.recordings] for c in calls if len(c.recordings) >= 2]
        assert sum(len(set(names)) < len(names) for names in stems) >= 3, "calls whose files share a name"

    counters = stack.sim.counters()
    metrics = stack.metrics()
    assert not metrics.get("JobsFailed") and not metrics.get("RecordingsFailed")
    # Name-free URLs were matched by position, not worked around: every recording came from object
    # storage, none from the by-name fallback (the synthetic calls never have two recordings with the
    # same begin and end, so no position is ambiguous).
    assert counters["obs_downloads"] >= counts["recordings"]["expected"]
    assert not metrics.get("RecordingFallbacks")
    if faults is not None:
        assert counters.get("unknown_codes_injected", 0) > 0, counters
        assert metrics.get("CcfsUnknownResultCode", 0) >= counters["unknown_codes_injected"]
