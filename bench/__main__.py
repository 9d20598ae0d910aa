"""``python -m bench [--smoke] [--only NAME,...] [--json PATH]``: the performance figures.

Prints one table (figures vs targets) and writes the same figures as JSON. ``make bench`` runs the
full set (about 10 minutes on 2 cores); ``--smoke`` runs every figure on small inputs (about 2
minutes) to prove the harness works; its figures are not comparable with the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import FIGURES, SMOKE, Context, Params, start_simulator, timed
from bench.harness import ROOT, Template, load_average, log
from bench.report import render


def _machine() -> dict[str, object]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "memory_gib": round(mem / 1024**3, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def _own_peak_kib() -> int:
    """This process's peak RSS (the simulator and the orchestration)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small inputs: proves the harness, not the targets")
    parser.add_argument("--only", default="", help=f"comma list of figures ({', '.join(FIGURES)})")
    parser.add_argument(
        "--json", type=Path, default=None, help="where to write the figures (default bench/results*.json)"
    )
    parser.add_argument("--latency-ms", type=float, default=None, help="simulated CC-FS round trip (default 50)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild the generated bill ZIPs")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (child logs)")
    parser.add_argument(
        "--handler-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: override a download-function variable (e.g. RECORDING_CONCURRENCY=4)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="experiment: RecordingQueue batch size")
    parser.add_argument("--recordings", type=int, default=None, help="experiment: how many small recordings")
    parser.add_argument("--big-mib", type=int, default=None, help="experiment: size of the big recording (MiB)")
    args = parser.parse_args(argv)

    params: Params = SMOKE if args.smoke else Params()
    if args.latency_ms is not None:
        params = replace(params, latency_ms=args.latency_ms)
    if args.no_cache:
        params = replace(params, use_cache=False)
    if args.handler_env or args.batch_size:
        overrides = dict(item.split("=", 1) for item in args.handler_env)
        params = replace(params, handler_env=overrides, recording_batch_size=args.batch_size)
    if args.recordings:
        params = replace(params, recordings=args.recordings)
    if args.big_mib:
        params = replace(params, big_recording=args.big_mib * 1024 * 1024)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    out_path = args.json or ROOT / "bench" / ("results-smoke.json" if args.smoke else "results.json")

    run_dir = Path(tempfile.mkdtemp(prefix="aicc-bench-"))
    started = time.monotonic()
    load_start = load_average()
    results: dict[str, object] = {}
    failures: dict[str, str] = {}
    log(f"run directory {run_dir}; load average {load_start[0]:.2f}")
    sim, day, calls, big_call = start_simulator(params)
    try:
        ctx = Context(run_dir, params, sim, day, Template.load(sim), calls, big_call)
        for name in names:
            log(f"--- {name}")
            try:
                results[name] = timed(name, ctx)
            except Exception as exc:  # noqa: BLE001 - one broken figure must not hide the others
                failures[name] = f"{type(exc).__name__}: {exc}"
                log(f"{name} FAILED: {failures[name]}")
    finally:
        sim.stop()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    report = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "smoke": args.smoke,
        "machine": _machine(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_average()],
        "elapsed_s": round(time.monotonic() - started, 1),
        "harness_peak_rss_mib": round(_own_peak_kib() / 1024, 1),
        "params": asdict(params),
        "figures": results,
        "failures": failures,
    }
    out_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(render(report))
    log(f"figures written to {out_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
