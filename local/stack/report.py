"""Reading the workers' logs (EMF metrics, invocation records) and printing the demo summary."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "LiveLine",
    "SqlSummary",
    "emf_sum",
    "emf_totals",
    "human_size",
    "invocation_stats",
    "print_summary",
    "sql_summary",
]


def _json_lines(logs: Path) -> Any:
    for path in sorted(logs.glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("{"):
                    try:
                        yield path.stem, json.loads(line)
                    except ValueError:
                        continue


def emf_totals(logs: Path) -> dict[str, float]:
    """Sum of every EMF metric (Powertools Metrics output) in the workers' logs, by name."""
    return emf_sum(record for _, record in _json_lines(logs))


def emf_sum(records: Iterable[Any]) -> dict[str, float]:
    """Sum of every EMF metric in ``records`` (parsed JSON log lines; others are skipped), by name."""
    totals: dict[str, float] = {}
    for record in records:
        meta = record.get("_aws") if isinstance(record, dict) else None
        if not isinstance(meta, dict):
            continue
        for directive in meta.get("CloudWatchMetrics") or []:
            for metric in directive.get("Metrics") or []:
                value = record.get(metric.get("Name"))
                values = value if isinstance(value, list) else [value]
                name = metric["Name"]
                totals[name] = totals.get(name, 0.0) + sum(v for v in values if isinstance(v, (int, float)))
    return dict(sorted(totals.items()))


def invocation_stats(logs: Path) -> dict[str, Counter[str]]:
    """Per worker: invocations, records, failed records, errors (from the local stack's own lines)."""
    stats: dict[str, Counter[str]] = {}
    for worker, record in _json_lines(logs):
        kind = record.get("local") if isinstance(record, dict) else None
        if kind not in ("invoke", "tick", "access"):
            continue
        counter = stats.setdefault(worker, Counter())
        counter["invocations"] += 1
        if kind == "invoke":
            counter["records"] += int(record.get("records") or 0)
            counter["failed_records"] += int(record.get("failed") or 0)
        if record.get("error"):
            counter["errors"] += 1
        if kind == "access" and int(record.get("status") or 0) >= 400:
            counter[f"http_{record['status']}"] += 1
    return stats


class LiveLine:
    """One progress line rewritten in place on a TTY; a line every ``every`` seconds otherwise."""

    def __init__(self, out: TextIO = sys.stderr, every: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._last = -every
        self._width = 0

    def __call__(self, progress: Any) -> None:
        text = progress.line()
        if self.tty:
            pad = max(0, self._width - len(text))
            self.out.write("\r" + text + " " * pad)
            self._width = len(text)
            self.out.flush()
        elif progress.elapsed - self._last >= self.every or progress.complete:
            self._last = progress.elapsed
            self.out.write(text + "\n")
            self.out.flush()

    def done(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self.out.flush()


def _section(out: TextIO, title: str) -> None:
    out.write(f"\n== {title}\n")


def _tenant_label(stack: Any, tenant: str) -> str:
    keys = "own ak/sk" if stack.separate_keys else "shared ak/sk"
    return f"{tenant} ({stack.zone_of(tenant)}, {keys})"


@dataclass
class SqlSummary:
    """What the demo prints of its SQL queries; ``ok``: they ran and agree with the ground truth."""

    ok: bool
    lines: list[str] = field(default_factory=list)


def sql_summary(stack: Any) -> SqlSummary:
    """Run local/sql's queries over the stack's bucket and hold them against the simulator's truth."""
    from local.sql.queries import differences, stack_answers, truth_answers

    try:
        answers = stack_answers(stack)
        wrong = differences(answers, truth_answers(stack))
    except Exception as exc:  # noqa: BLE001 - the demo reports any failure of the SQL step and fails
        return SqlSummary(False, [f"SQL FAILED: {type(exc).__name__}: {exc}"])
    lines = ["calls per tenant per day (count DISTINCT call_id FROM cdr):"]
    lines += [f"  {account:<12} {day}  {calls:>6}" for (account, day), calls in sorted(answers.calls.items())]
    spread = Counter(answers.recordings_per_call.values())
    lines.append(
        f"recordings per call (cdr LEFT JOIN recording_index): {len(answers.recordings_per_call)} calls; "
        + ", ".join(f"{n} recording(s): {calls} calls" for n, calls in sorted(spread.items()))
    )
    lines.append("recording bytes per tenant (manifests of COMPLETED jobs, UNNEST(recordings)):")
    lines += [f"  {t:<12} {n:>6} recordings {human_size(b):>10}" for t, (n, b) in sorted(answers.bytes.items())]
    if wrong:
        lines.append(f"SQL DISAGREES with the ground truth ({len(wrong)}):")
        lines += [f"  - {w}" for w in wrong]
    else:
        lines.append("SQL answers = the simulator's ground truth")
    return SqlSummary(not wrong, lines)


def print_summary(
    stack: Any, progress: Any, verdict: Any, elapsed: float, out: TextIO = sys.stdout, sql: SqlSummary | None = None
) -> None:
    counts = verdict.counts
    cfg = stack.config
    _section(out, "requested")
    out.write(
        f"tenants {', '.join(_tenant_label(stack, t) for t in stack.tenants)}, {cfg.calls} calls/tenant/day, days from "
        f"{stack.base_date} x{cfg.days}, fault profile {cfg.profile}\n"
    )
    for tenant, begin, end in stack.required:
        out.write(f"  range {tenant}: {begin} .. {end}\n")
    jobs = counts.get("jobs", {})
    out.write(f"windows {counts.get('windows', 0)}; jobs {sum(jobs.values())}: {_kv(jobs)}\n")
    _section(out, "arrived")
    cdr, index, rec = counts.get("cdr_rows", {}), counts.get("index_rows", {}), counts.get("recordings", {})
    out.write(f"CDR rows            {cdr.get('actual', 0):>8} (truth {cdr.get('expected', 0)})\n")
    out.write(f"recording-index rows{index.get('actual', 0):>8} (truth {index.get('expected', 0)})\n")
    out.write(
        f"recordings verified {rec.get('verified', 0):>8} (truth {rec.get('expected', 0)}, "
        f"{human_size(rec.get('bytes_expected', 0))})\n"
    )
    out.write(f"sidecars {counts.get('sidecars', 0)}, manifests {counts.get('manifests', 0)}, ")
    out.write(f"raw bills {counts.get('raw_bills', 0)}, bytes in S3 {human_size(counts.get('s3_bytes', 0))}\n")
    _section(out, "S3 keys by prefix")
    for prefix, n in counts.get("s3_keys_by_prefix", {}).items():
        out.write(f"  {prefix:<20}{n:>7}\n")
    if verdict.sample_manifest is not None:
        _section(out, "sample manifest")
        text = json.dumps(verdict.sample_manifest, indent=2, default=str)
        lines = text.splitlines()
        more = f"\n  ... ({len(lines) - 40} more lines)\n" if len(lines) > 40 else "\n"
        out.write("\n".join(lines[:40]) + more)
    _section(out, "metrics (EMF totals from the function logs)")
    metrics = stack.metrics()
    out.write(("  " + _kv({k: _num(v) for k, v in metrics.items()}, sep="\n  ") if metrics else "  none") + "\n")
    _section(out, "invocations")
    for worker, stats in sorted(invocation_stats(stack.run_dir / "logs").items()):
        out.write(f"  {worker:<42} {_kv(stats)}\n")
    restarts = stack.worker_restarts()
    if restarts:
        out.write(f"  restarts: {_kv(restarts)}\n")
    _section(out, "CC-FS simulator counters")
    sim_counters = stack.sim.counters()
    interesting = {
        k: v
        for k, v in sim_counters.items()
        if k.startswith(("requests_by_op.", "results.", "callbacks_", "http_"))
        or k.endswith("_injected")
        or k
        in (
            "queries_accepted",
            "bills_built",
            "bills_downloaded",
            "urls_issued",
            "obs_downloads",
            "expired_urls_issued",
        )
    }
    out.write("  " + _kv(dict(sorted(interesting.items())), sep="\n  ") + "\n")
    at_once = stack.sim.concurrency()
    out.write(
        f"  at once (peak): {at_once['ccfs_peak']} CC-FS requests, {at_once['obs_peak']} object-storage GETs, "
        f"{at_once['connections_peak']} connections\n"
    )
    _section(out, "local deviations from the template")
    for key, value in stack.overrides.items():
        out.write(f"  {key}: {value}\n")
    for note in stack.notes:
        out.write(f"  note: {note}\n")
    if sql is not None:
        _section(out, "SQL (DuckDB over the exported objects, tables derived from template.yaml's Glue tables)")
        out.write("\n".join(sql.lines) + "\n")
    _section(out, "verdict")
    out.write(f"elapsed {elapsed:.1f} s (until complete: {progress.elapsed:.1f} s)\n")
    if progress.timed_out:
        out.write(f"NOT COMPLETE after the timeout; still pending: {'; '.join(progress.pending[:8])}\n")
    for note in verdict.notes[:5]:
        out.write(f"  note: {note}\n")
    if verdict.ok and not progress.timed_out:
        out.write("VERDICT: OK - S3 holds exactly the simulator's ground truth for every requested window\n")
    else:
        out.write(f"VERDICT: FAILED - {len(verdict.problems)} problem(s):\n")
        for problem in verdict.problems:
            out.write(f"  - {problem}\n")
    out.flush()


def _kv(data: dict[str, Any], sep: str = " ") -> str:
    return sep.join(f"{k}={v}" for k, v in data.items())


def _num(value: float) -> Any:
    return int(value) if float(value).is_integer() else round(value, 3)


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
