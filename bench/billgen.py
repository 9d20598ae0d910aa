"""Big bill ZIPs for the benchmarks, written as a stream (the simulator builds bills in memory).

Rows look like the simulator's inbound calls (IVR → queue → agent, three CDR legs per call, the 21
documented columns plus ``leave_reason``, ~200 bytes), spread over two tenant-local days, one
numbered CSV per ``split_rows`` rows, as CC-FS names them. One entry's rows are formatted once and
reused by every entry with the entry number in the call ids (formatting 5 M rows took a minute).
Deflated like the simulator's bills, or stored: a stored ZIP reaches 1 GiB with ~5.2 M rows, where a
deflated one would need ~60 M (about 20 minutes of CPU to read).

Files are cached under ``$TMPDIR/aicc-bench-cache`` keyed by their parameters: a second run reuses
them (``--no-cache`` rebuilds).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from local.ccfs_simulator.data import CDR_HEADER

__all__ = ["BillInfo", "cdr_bill"]

_VERSION = 3  # bump when the rows change: invalidates the cache
_SECONDS = 2 * 86400  # calls start within two days


@dataclass
class BillInfo:
    path: str
    rows: int
    size: int
    entries: int
    stored: bool
    days: list[str]


def cache_dir() -> Path:
    path = Path(os.environ.get("AICC_BENCH_CACHE") or Path(tempfile.gettempdir()) / "aicc-bench-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _times(day: date) -> list[str]:
    start = datetime.combine(day, datetime.min.time())
    return [(start + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S") for s in range(_SECONDS + 4000)]


def _rows(first: int, count: int, day: date, epoch0: int, ts: list[str], account: str) -> str:
    """``count`` CSV lines (CRLF) from row number ``first``: three legs per call. Call ids carry the
    placeholder ``EEE`` where each entry puts its number (entries reuse one formatted block)."""
    out = []
    for i in range(first, first + count):
        call, leg = divmod(i, 3)
        t0 = (call * 7) % _SECONDS
        t1 = t0 + 8 + call % 80
        t2 = t1 + 2 + call % 170
        t3 = t2 + 2 + call % 13
        t4 = t3 + 20 + call % 880
        call_id = f"{epoch0 + t0}-EEE{call % 100000:05d}"
        caller = f"138{(call * 7919) % 100_000_000:08d}"
        agent = f"{10000 + call % 200}"
        if leg == 0:
            cols = ("", ts[t0], ts[t0], ts[t0], ts[t0], ts[t0], ts[t1], "3", "100", "0", "1", "", "", "")
        elif leg == 1:
            cols = ("", ts[t1], ts[t2], "", "", ts[t1], ts[t2], "1", "5001", "0", "2", "3", "100", "")
        else:
            cols = (agent, ts[t2], ts[t3], ts[t2], ts[t3], ts[t3], ts[t4], "2", agent, "16", "-1", "1", "5001", "2")
        out.append(
            f"1000000000000000001,{account},1,{cols[0]},{call_id},{caller},4008001234,{cols[1]},{cols[2]},"
            f"{cols[3]},{cols[4]},{cols[5]},{cols[6]},{cols[7]},{cols[8]},0,{cols[9]},{cols[10]},17,"
            f"{cols[11]},{cols[12]},{cols[13]}\r\n"
        )
    return "".join(out)


def cdr_bill(
    *,
    rows: int,
    day: date,
    stored: bool = False,
    min_bytes: int = 0,
    split_rows: int = 50_000,
    account: str = "acct001",
    use_cache: bool = True,
) -> BillInfo:
    """A bill ZIP with CDR entries only (``dataType=call``): at least ``rows`` rows and, when
    ``min_bytes`` is given, whole entries until the file is at least that large."""
    key = f"v{_VERSION}-{account}-{day:%Y%m%d}-{rows}-{min_bytes}-{split_rows}-{'stored' if stored else 'deflated'}"
    directory = cache_dir()
    path = directory / f"bill-{key}.zip"
    meta = directory / f"bill-{key}.json"
    if use_cache and path.exists() and meta.exists():
        info = BillInfo(**json.loads(meta.read_text(encoding="utf-8")))
        if info.size == path.stat().st_size:
            return info
    ts = _times(day)
    epoch0 = int(datetime.combine(day, datetime.min.time()).timestamp()) - 8 * 3600  # Asia/Shanghai
    header = ",".join(CDR_HEADER) + "\r\n"
    prefix = f"{day:%Y%m%d}235959123456"
    written = entries = 0
    tmp = path.with_suffix(".partial")
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    full = _rows(0, split_rows, day, epoch0, ts, account).encode()  # formatted once, reused per entry
    with zipfile.ZipFile(tmp, "w", compression=method) as archive:
        while written < rows or (min_bytes and tmp.stat().st_size < min_bytes):
            entries += 1
            count = split_rows if min_bytes else min(split_rows, rows - written)
            body = full if count == split_rows else _rows(0, count, day, epoch0, ts, account).encode()
            with archive.open(f"{prefix}_call_{entries}.csv", "w") as entry:
                entry.write(header.encode())
                entry.write(body.replace(b"-EEE", b"-%03d" % (entries % 1000)))
            written += count
    os.replace(tmp, path)
    info = BillInfo(str(path), written, path.stat().st_size, entries, stored, [str(day), str(day + timedelta(days=1))])
    meta.write_text(json.dumps(asdict(info)), encoding="utf-8")
    return info
