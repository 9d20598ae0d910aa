"""An operator's first SQL on the export, run with DuckDB over a local stack's bucket
(:func:`stack_answers`), and the same answers computed from the CC-FS simulator's ground truth
(:func:`truth_answers`), so the demo and the e2e tests can hold one against the other.

The queries are written against the Glue table and column names (what an Athena user types); the
DuckDB views under them come from template.yaml (:mod:`local.sql.duck`).
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from local.sql.duck import connect, download
from local.sql.glue import load_glue_tables

__all__ = ["QUERIES", "SqlAnswers", "differences", "stack_answers", "truth_answers"]

ALL = "_all"  # the account_id partition of rows without one (exporter.layout)
FMT = "%Y-%m-%d %H:%M:%S"
_TIME_COLUMNS = ("call_begin", "wait_begin", "ack_begin", "call_end", "wait_end", "ack_end")

QUERIES = {
    "calls_per_tenant_per_day": """
        SELECT account_id, call_date, count(DISTINCT call_id) AS calls
        FROM cdr GROUP BY account_id, call_date ORDER BY account_id, call_date""",
    "recordings_per_call": """
        SELECT c.account_id, c.call_id, count(DISTINCT r.file_name) AS recordings
        FROM (SELECT DISTINCT account_id, call_id FROM cdr) AS c
        LEFT JOIN recording_index AS r ON r.account_id = c.account_id AND r.call_id = c.call_id
        GROUP BY c.account_id, c.call_id""",
    "recording_bytes_per_tenant": """
        SELECT tenant, count(*) AS recordings, sum(rec.size) AS bytes
        FROM (SELECT tenant, unnest(recordings) AS rec FROM manifests WHERE status = 'COMPLETED')
        GROUP BY tenant ORDER BY tenant""",
}


@dataclass
class SqlAnswers:
    """``calls``: (account_id, call_date ``yyyy-mm-dd``) -> distinct calls; ``recordings_per_call``:
    (account_id, call_id) -> recordings, for every call with CDR rows (0 = none); ``bytes``: tenant ->
    (recordings, bytes) over the completed jobs' manifests."""

    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    recordings_per_call: dict[tuple[str, str], int] = field(default_factory=dict)
    bytes: dict[str, tuple[int, int]] = field(default_factory=dict)


def stack_answers(stack: Any) -> SqlAnswers:
    """Run :data:`QUERIES` with DuckDB over a copy of the stack's bucket, through views derived from
    the stack's template."""
    tables = load_glue_tables(Path(stack.config.template), stack.names.bucket)
    with tempfile.TemporaryDirectory(prefix="sql-") as tmp:
        root = Path(tmp)
        download(stack.client("s3"), stack.names.bucket, tables, root)
        con = connect(tables, root)
        try:
            calls = con.sql(QUERIES["calls_per_tenant_per_day"]).fetchall()
            per_call = con.sql(QUERIES["recordings_per_call"]).fetchall()
            sizes = con.sql(QUERIES["recording_bytes_per_tenant"]).fetchall()
        finally:
            con.close()
    return SqlAnswers(
        calls={(a, d): int(n) for a, d, n in calls},
        recordings_per_call={(a, c): int(n) for a, c, n in per_call},
        bytes={t: (int(n), int(b or 0)) for t, n, b in sizes},
    )


def _partition(row: dict[str, str], window_begin: datetime) -> tuple[str, str]:
    """Where docs/design.md puts a row: its account_id (``_all`` if empty) and the date of its
    call_begin, else of its first valid other time column, else of its window's start."""
    account = (row.get("account_id") or "").strip() or ALL
    for column in _TIME_COLUMNS:
        try:
            return account, datetime.strptime((row.get(column) or "").strip(), FMT).date().isoformat()
        except ValueError:
            continue
    return account, window_begin.date().isoformat()


def truth_answers(stack: Any) -> SqlAnswers:
    """The answers :data:`QUERIES` must give, from the simulator's ground truth over every window
    the stack exported (each window's current job, as ``LocalStack.verify`` sums it)."""
    items = stack.scan_jobs_table()
    jobs = {i["response_id"]: i for i in items if str(i.get("pk", "")).startswith("JOB#") and i.get("sk") == "JOB"}
    calls: dict[tuple[str, str], set[str]] = defaultdict(set)
    recordings: Counter[tuple[str, str]] = Counter()
    in_cdr: set[tuple[str, str]] = set()
    sizes: dict[str, list[int]] = defaultdict(list)
    for window in (i for i in items if str(i.get("pk", "")).startswith("WINDOW#")):
        job = jobs.get(str(window.get("response_id") or ""))
        if job is None:
            continue
        tenant = str(window["pk"]).removeprefix("WINDOW#")
        begin, _, end = str(window["sk"]).partition("|")
        start = datetime.strptime(begin, FMT)
        truth = stack.sim.truth(None if tenant == ALL else tenant, start, datetime.strptime(end, FMT))
        for row in truth.cdr_rows:
            account, day = _partition(row, start)
            calls[(account, day)].add(row["call_id"])
            in_cdr.add((account, row["call_id"]))
        for rec in truth.recordings:
            recordings[(rec.account_id or ALL, rec.call_id)] += 1
        if job.get("job_status") == "COMPLETED":
            sizes[tenant] += [rec.size for rec in truth.recordings]
    return SqlAnswers(
        calls={key: len(ids) for key, ids in calls.items()},
        recordings_per_call={key: recordings[key] for key in in_cdr},
        bytes={tenant: (len(s), sum(s)) for tenant, s in sizes.items()},
    )


def differences(actual: SqlAnswers, expected: SqlAnswers, limit: int = 5) -> list[str]:
    """What the SQL answered that the truth does not say (empty: they agree)."""
    found: list[str] = []
    for what in ("calls", "recordings_per_call", "bytes"):
        got, want = getattr(actual, what), getattr(expected, what)
        wrong = [k for k in sorted(set(got) | set(want), key=str) if got.get(k) != want.get(k)]
        found += [f"{what} {k}: SQL {got.get(k)}, truth {want.get(k)}" for k in wrong[:limit]]
        if len(wrong) > limit:
            found.append(f"{what}: {len(wrong) - limit} more differences")
    return found
