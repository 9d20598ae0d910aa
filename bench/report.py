"""The table: each figure, its target, and whether this run reached it (Markdown, pasteable)."""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _size(n: float) -> str:
    return f"{n / (1024 * MiB):.3g} GiB" if n >= 1024 * MiB else f"{n / MiB:.0f} MiB"


def _ok(passed: bool | None) -> str:
    return "n/a" if passed is None else ("yes" if passed else "**no**")


def _operations(ops: dict[str, Any]) -> str:
    return ", ".join(f"{op.replace(':', ' ')} ×{n:g}" for op, n in ops.items())


def _requests_row(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """AWS requests per recording, counted in the handler process (``bench.awscount``)."""
    counted = r["project"]["aws_requests"]
    naive = r["naive"].get("aws_requests", {})
    others = counted["records"][1:]
    extra = "; ".join(f"{g['records']} record(s) {g['requests']}: {_operations(g['operations'])}" for g in others[:3])
    measured = (
        f"{counted['per_recording']:g} ({_operations(counted['per_recording_operations'])}) on "
        f"{counted['records'][0]['records'] if counted['records'] else 0} of {r['recordings']}; "
        f"mean {counted['per_recording_mean']:g}"
        + (f" ({extra})" if extra else "")
        + f"; retries {counted['retries']}; fan-out +{r['project']['fan_out']['per_recording']:g} SQS; "
        f"naive {naive.get('per_recording', 'n/a')}"
        + (f" ({_operations(naive.get('per_recording_mean_by_operation', {}))})" if naive else "")
    )
    return (
        "AWS requests per recording, happy path, counted in the handler process (+ once per job)",
        measured,
        "≤ 4",
        _ok(counted["per_recording"] <= 4),
    )


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(figure, measured, target, met)`` for every figure present."""
    f = report.get("figures", {})
    out: list[tuple[str, str, str, str]] = []

    if "big_recording" in f:
        r = f["big_recording"]
        naive = r.get("naive", {})
        naive_text = (
            f"naive script: {_fmt(naive['peak_rss_mib'])} MiB" if "peak_rss_mib" in naive else naive.get("skipped", "")
        )
        out.append(
            (
                f"peak RSS copying a {_size(r['bytes'])} recording (download handler, own process)",
                f"{_fmt(r['project']['peak_rss_mib'])} MiB ({naive_text})",
                "≤ 128 MiB",
                _ok(r["project"]["peak_rss_mib"] <= 128),
            )
        )
    if "big_bill" in f:
        r = f["big_bill"]
        out.append(
            (
                f"peak RSS processing a {_size(r['zip_bytes'])} bill ZIP ({r['rows']:,} CDR rows)",
                f"{_fmt(r['peak_rss_mib'])} MiB ({_fmt(r['seconds'])} s, {r['rows_per_s']:,} rows/s)",
                "≤ 128 MiB",
                _ok(r["peak_rss_mib"] <= 128),
            )
        )
    if "recordings_rate" in f:
        r = f["recordings_rate"]
        out.append(
            (
                f"recordings per minute, {r['recordings']} × {r['bytes_each'] / 1e6:g} MB, one handler process, "
                f"{r['latency_ms']:g} ms CC-FS latency",
                f"{r['project']['per_minute']:,}/min vs naive {r['naive']['per_minute']:,}/min = {r['ratio']}×",
                "≥ 10× naive",
                _ok(r["ratio"] >= 10),
            )
        )
    if "recordings_rate" in f and "aws_requests" in f["recordings_rate"]["project"]:
        out.append(_requests_row(f["recordings_rate"]))
    if "big_recording" in f:
        r = f["big_recording"]
        stream_s = r["project"].get("s3_phases_s", {}).get("upload_fileobj")
        slower = min(r["leg_ccfs_mb_per_s"], r["leg_s3_mb_per_s"])
        if stream_s:
            stream = r["bytes"] / stream_s / 1e6
            measured = (
                f"streamed GET→S3 {_fmt(stream)} MB/s = {stream / slower:.0%} of the slower leg "
                f"(CC-FS→null {_fmt(r['leg_ccfs_mb_per_s'])}, bytes→S3 {_fmt(r['leg_s3_mb_per_s'])} MB/s); "
                f"end to end incl. verify-copy {_fmt(r['project']['mb_per_s'])} MB/s = {r['rate_vs_slower_leg']:.0%}"
            )
            met = _ok(stream / slower >= 0.8)
        else:
            measured = f"{_fmt(r['project']['mb_per_s'])} MB/s = {r['rate_vs_slower_leg']:.0%} of the slower leg"
            met = _ok(r["rate_vs_slower_leg"] >= 0.8)
        out.append(
            (f"big-file copy rate ({_size(r['bytes'])} recording) vs the slower leg alone", measured, "≥ 80 %", met)
        )
    if "coldstart" in f:
        r = f["coldstart"]
        ratios = r["ratio"]
        measured = ", ".join(f"{name} {ratio}× ({_fmt(r['median_ms'][name], 0)} ms)" for name, ratio in ratios.items())
        out.append(
            (
                f"cold start: import + init vs `import boto3` ({_fmt(r['median_ms']['boto3'], 0)} ms), "
                f"median of {r['runs']}",
                measured,
                "≤ 1.5×",
                _ok(all(v <= 1.5 for v in ratios.values())),
            )
        )
    if "callbacks" in f:
        r = f["callbacks"]
        out.append(
            (
                f"callback load: {r['requests']:,} signed callbacks via the local API front, {r['senders']} senders",
                f"{_fmt(r['per_second'])}/s, {r['errors']} errors, "
                f"p50 {_fmt(r['p50_ms'])} ms, p99 {_fmt(r['p99_ms'])} ms; "
                f"function p50 {r['function_duration_p50_ms']} ms; exactly one bill message per job: "
                f"{'yes' if r['exactly_once'] else 'NO'}",
                "≥ 200/s, 0 errors",
                _ok(r["per_second"] >= 200 and r["errors"] == 0 and r["exactly_once"]),
            )
        )
    if "scaling" in f:
        r = f["scaling"]
        runs = r["runs"]
        sizes = " / ".join(f"{x['rows']:,}" for x in runs)
        times = " / ".join(f"{_fmt(x['seconds'])} s" for x in runs)
        rss = " / ".join(f"{_fmt(x['peak_rss_mib'])}" for x in runs)
        slopes = " → ".join(f"{s} µs" for s in r["us_per_row_between_sizes"])
        linear = r["slope_spread"] <= 0.2
        flat = runs[-1]["peak_rss_mib"] <= runs[0]["peak_rss_mib"] * 1.15
        out.append(
            (
                f"scaling: bill ZIPs of {sizes} CDR rows",
                f"time {times} (marginal {slopes} per row, spread {r['slope_spread']:.0%}"
                + (
                    "; CPU " + " → ".join(f"{s} µs" for s in r["cpu_us_per_row_between_sizes"])
                    if r.get("cpu_us_per_row_between_sizes")
                    else ""
                )
                + f"); peak RSS {rss} MiB",
                "time linear (±20 %), memory flat",
                _ok(linear and flat),
            )
        )
    return out


def render(report: dict[str, Any]) -> str:
    machine = report.get("machine", {})
    lines = [
        f"aicc-export benchmarks — {report.get('generated_at', '')} — `{report.get('command', '')}`",
        f"machine: {machine.get('cpus')} CPUs ({machine.get('cpu')}), {machine.get('memory_gib')} GiB, "
        f"Python {machine.get('python')}; load average at start {report.get('load_average_start')}, "
        f"at end {report.get('load_average_end')}; run time {report.get('elapsed_s')} s"
        + ("; SMOKE RUN (small inputs): not comparable with the targets" if report.get("smoke") else ""),
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(report)]
    for name, error in report.get("failures", {}).items():
        lines.append(f"| {name} | FAILED: {error} | | **no** |")
    return "\n".join(lines)
