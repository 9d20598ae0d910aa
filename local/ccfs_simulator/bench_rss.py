"""Stream one big recording through the simulator and report the simulator process's peak RSS.

    python -m local.ccfs_simulator.bench_rss [--size BYTES] [--via obs|downloadRecordFile]

This process runs the simulator; a child process (the project's CcfsClient) asks for the URL and
streams the body to /dev/null, so the figure is the server side only. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .config import SimulatorConfig
from .simulator import Simulator

_CHILD = r"""
import json, sys, time
from ccfs.client import CcfsClient, CcfsConfig
args = json.loads(sys.argv[1])
config = CcfsConfig(args["base_url"], args["ak"], args["sk"], ca_bundle=args["ca_bundle"], read_timeout=300)
started = time.perf_counter()
with CcfsClient(config) as client, open("/dev/null", "wb") as sink:
    if args["via"] == "obs":
        from datetime import datetime
        begin = datetime.fromisoformat(args["begin"])
        [url] = client.get_record_file_urls(args["call_id"], begin, begin)
        size = 0
        with client.http.stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1 << 20):
                sink.write(chunk)
                size += len(chunk)
    else:
        size = client.download_record_file(args["file_name"], sink)
print(json.dumps({"bytes": size, "seconds": time.perf_counter() - started}))
"""


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1 << 30, help="bytes (default 1 GiB)")
    parser.add_argument("--via", choices=("obs", "downloadRecordFile"), default="obs")
    args = parser.parse_args(argv)

    simulator = Simulator(SimulatorConfig(seed=1))
    day = simulator.base_date
    call = next(c for c in simulator.calls("acct001", day) if len(c.recordings) == 1)
    simulator.set_big_recording(call.call_id, args.size)
    recording = next(c for c in simulator.calls("acct001", day) if c.call_id == call.call_id).recordings[0]
    with simulator:
        baseline = _vm_hwm_kib()
        child_args = {
            "base_url": simulator.base_url,
            "ak": simulator.ak,
            "sk": simulator.sk,
            "ca_bundle": simulator.ca_bundle,
            "via": args.via,
            "call_id": call.call_id,
            "begin": recording.call_begin.isoformat(sep=" "),
            "file_name": recording.file_name,
        }
        layers = str(Path(__file__).resolve().parents[2] / "layers" / "shared")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [layers, os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        child = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _CHILD, json.dumps(child_args)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        result = json.loads(child.stdout)
        peak = _vm_hwm_kib()
        counters = simulator.counters()
    report = {
        "via": args.via,
        "size": args.size,
        "bytes_received": result["bytes"],
        "bytes_served": counters.get("bytes_served", 0),
        "seconds": round(elapsed, 2),
        "mb_per_s": round(args.size / elapsed / 1e6, 1),
        "simulator_peak_rss_mib": round(peak / 1024, 1),
        "simulator_rss_before_download_mib": round(baseline / 1024, 1),
    }
    print(json.dumps(report))
    return 0 if result["bytes"] == args.size else 1


if __name__ == "__main__":
    sys.exit(main())
