"""``python -m local.ccfs_simulator``: run the simulator until SIGINT/SIGTERM.

Prints one JSON line (base_url, ca_bundle, ak, sk, tenants, admin_url, ...) on stdout, then serves.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import sys
import threading
from dataclasses import replace
from datetime import date
from typing import Any

from .config import (
    BILL_ENTRY_NAMES,
    CSV_ENCODINGS,
    CSV_HEADERS,
    PROFILES,
    RESPONSE_ID_STYLES,
    URL_LIST_STYLES,
    URL_NAMINGS,
    URL_PLACEMENTS,
    SimulatorConfig,
    TenantSpec,
)
from .simulator import Simulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m local.ccfs_simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tenants", type=int, default=1, help="tenants acct001..acctNNN")
    p.add_argument("--calls-per-day", type=int, default=200)
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--tz", default="Asia/Shanghai", help="time zone(s), comma-separated, cycled over tenants")
    p.add_argument("--ak", default="demo-ak")
    p.add_argument("--sk", default=None, help="default: random per run (printed)")
    p.add_argument(
        "--tenant-keys",
        action="store_true",
        help="each tenant its own developer account: ak '{ak}-{accountId}', random sk (printed); "
        "default: --ak/--sk owns every tenant",
    )
    p.add_argument("--base-date", type=date.fromisoformat, default=None, help="yyyy-mm-dd, default today-7")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--min-recording-bytes", type=int, default=2_000)
    p.add_argument("--max-recording-bytes", type=int, default=64_000)
    p.add_argument("--split-rows", type=int, default=50_000)
    p.add_argument("--url-expiry", type=int, default=8 * 3600, help="seconds")
    p.add_argument(
        "--url-list-style", choices=URL_LIST_STYLES, default="array", help="how several URLs of a call are sent"
    )
    p.add_argument("--url-placement", choices=URL_PLACEMENTS, default="resultData", help="where 'url' goes")
    p.add_argument("--url-naming", choices=URL_NAMINGS, default="uuid", help="URL path ends in a UUID or the file name")
    p.add_argument("--response-id-style", choices=RESPONSE_ID_STYLES, default="hex32")
    p.add_argument(
        "--multi-recording-rate", type=float, default=0.10, help="share of long calls recorded in two segments"
    )
    p.add_argument(
        "--shared-name-rate",
        type=float,
        default=0.0,
        help="share of two-segment calls whose second file has the first's name in another directory",
    )
    p.add_argument(
        "--unknown-code-rate", type=float, default=None, help="share of CC-FS replies with an undocumented code"
    )
    p.add_argument("--callback-delay", type=float, default=0.0, help="seconds")
    p.add_argument("--callback-retry-interval", type=float, default=600.0, help="seconds")
    p.add_argument("--callback-max-tries", type=int, default=6)
    p.add_argument("--callback-ca", default=None, help="CA bundle to verify https callback URLs")
    p.add_argument("--callback-insecure", action="store_true", help="don't verify callback TLS (labs)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="none", help="fault profile")
    p.add_argument("--latency-ms", type=float, default=None, help="overrides the profile's latency")
    p.add_argument("--fault-seed", type=int, default=None)
    p.add_argument("--plain-http", action="store_true", help="no TLS (debugging only)")
    p.add_argument("--ccfs-name", default=None, help="a host name for CC-FS's certificate, e.g. ccfs.sim.internal")
    p.add_argument(
        "--obs-name",
        default=None,
        help="serve the object store as its own server, name and CA (e.g. obs.sim.internal); default: on CC-FS's",
    )
    p.add_argument("--log-level", default="WARNING")
    bills = p.add_argument_group("bill file format (protocol §4 variants)")
    bills.add_argument(
        "--bill-entry-names",
        choices=BILL_ENTRY_NAMES,
        default="numbered",
        help="numbered: *_call_N.csv split every --split-rows; plain: one *_call.csv per kind",
    )
    bills.add_argument("--csv-extension", default=".csv", help="any letter case of .csv, e.g. .CSV")
    bills.add_argument("--csv-encoding", choices=CSV_ENCODINGS, default="utf-8", help="utf-8-sig = with a BOM")
    bills.add_argument("--csv-line-ending", choices=("crlf", "lf"), default="crlf")
    bills.add_argument(
        "--csv-header",
        choices=CSV_HEADERS,
        default="exact",
        help="exact names, no header row, or ' NAME ' in upper case with spaces",
    )
    bills.add_argument(
        "--bill-extra-entry",
        action="append",
        default=[],
        metavar="NAME",
        help="add an entry that is not bill data (repeatable), e.g. readme.txt",
    )
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    zones = [z.strip() for z in args.tz.split(",") if z.strip()] or ["Asia/Shanghai"]
    tenants = [
        TenantSpec(f"acct{i + 1:03d}", zones[i % len(zones)], args.calls_per_day, args.agents)
        for i in range(args.tenants)
    ]
    if args.tenant_keys:
        tenants = [replace(t, ak=f"{args.ak}-{t.account_id}", sk=secrets.token_hex(16)) for t in tenants]
    faults = PROFILES[args.profile]
    if args.latency_ms is not None:
        faults = replace(faults, latency_ms=args.latency_ms)
    if args.fault_seed is not None:
        faults = replace(faults, fault_seed=args.fault_seed)
    if args.unknown_code_rate is not None:
        faults = replace(faults, unknown_code_rate=args.unknown_code_rate)
    extra: dict[str, Any] = {"sk": args.sk} if args.sk else {}
    verify: bool | str = args.callback_ca or not args.callback_insecure
    return SimulatorConfig(
        seed=args.seed,
        tenants=tenants,
        ak=args.ak,
        tls=not args.plain_http,
        host=args.host,
        port=args.port,
        callback_delay=args.callback_delay,
        callback_retry_interval=args.callback_retry_interval,
        callback_max_tries=args.callback_max_tries,
        callback_verify=verify,
        url_expiry_seconds=args.url_expiry,
        url_list_style=args.url_list_style,
        url_placement=args.url_placement,
        url_naming=args.url_naming,
        response_id_style=args.response_id_style,
        multi_recording_rate=args.multi_recording_rate,
        shared_name_rate=args.shared_name_rate,
        split_rows=args.split_rows,
        min_recording_bytes=args.min_recording_bytes,
        max_recording_bytes=args.max_recording_bytes,
        faults=faults,
        base_date=args.base_date,
        days=args.days,
        bill_entry_names=args.bill_entry_names,
        csv_extension=args.csv_extension,
        csv_encoding=args.csv_encoding,
        csv_line_ending="\r\n" if args.csv_line_ending == "crlf" else "\n",
        csv_header=args.csv_header,
        bill_extra_entries=list(args.bill_extra_entry),
        ccfs_name=args.ccfs_name,
        obs_name=args.obs_name,
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        config = config_from_args(args)
        simulator = Simulator(config)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with simulator:
        print(json.dumps(simulator.info(include_secret=True)), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
