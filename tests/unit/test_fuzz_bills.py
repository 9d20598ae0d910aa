"""Fuzzing ``ccfs.bills`` with bounds on time and memory.

``tests/unit/test_ccfs_bills.py::test_fuzz_only_bill_errors`` feeds random bytes, byte-mutated
ZIPs and random CSV-ish text and checks that only :class:`BillError` escapes, within 5 s. This file
adds what that one leaves out:

* **mutated CSV**: a genuine bill's CSV (header, quoting, BOM, CRLF) damaged at the *text* level
  (quotes, separators, line breaks, NULs, BOMs, long runs, cut, duplicated or swapped pieces)
  and zipped correctly, so the damage reaches the CSV reader instead of stopping at the ZIP layer;
* **compressible entries** up to 1 MiB (below the ratio floor): a huge field, an endless quote,
  a line of a million tiny fields, many tiny rows;
* a **memory bound** per example (``tracemalloc`` peak), a **time bound** per example (Hypothesis
  ``deadline``) and a **hang guard** (``SIGALRM``), instead of a wall-clock check after the fact;
* a deterministic check that memory does not grow with the size of a bill (16 MiB of rows read
  with a few MiB of peak).

Property: reading returns rows (every row a dict of strings, with its entry and line) or raises a
specific :class:`BillError` subclass; nothing else, never a hang, never unbounded memory.
``FUZZ_EXAMPLES`` sets the number of examples (default 300; ``make fuzz``: 10,000).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import signal
import time
import tracemalloc
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccfs.bills import BillError, BillFile, BillLimits
from tests.unit.bill_rows import (
    CDR_NAMES,
    RECORD_NAMES,
    bills_with_random_content,
    cdr_row,
    mutated_bills,
    record_row,
)
from tests.unit.zipfactory import PREFIX, csv_bytes, entry_name

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
# Per example, tracemalloc on (it slows allocation-heavy code ~6x), on a loaded 2-core CI machine.
DEADLINE = timedelta(milliseconds=int(os.environ.get("FUZZ_DEADLINE_MS", "10000")))
HANG_SECONDS = 30  # an example still running after this is a hang, whatever the machine's load
PEAK_LIMIT = 16 * 1024 * 1024  # bytes traced at peak while reading one example
LIMITS = BillLimits(max_total_uncompressed=16 * 1024 * 1024)

CALL_1, CALL_2, RECORD_1 = entry_name("call", 1), entry_name("call", 2), entry_name("record", 1)


# ---------------------------------------------------------------------------- strategies

SPECIAL = ['"', ",", "\r", "\n", "\r\n", "\x00", "\ufeff", "é", "华", "\\", " ", "''", '""', "\t", "\x1a"]


def _genuine_csv(kind: str, rows: int, header: bool, bom: bool, newline: str) -> str:
    if kind == "call":
        data = csv_bytes([cdr_row(i, caller_no=f'13{i}"8,\n0') for i in range(rows)], CDR_NAMES if header else None)
    else:
        data = csv_bytes([record_row(i) for i in range(rows)], RECORD_NAMES if header else None)
    text = data.decode("utf-8").replace("\r\n", newline)
    return ("\ufeff" if bom else "") + text


@st.composite
def mutated_csv_text(draw: st.DrawFn) -> tuple[str, str]:
    """(entry kind, text): a genuine CSV with 1-6 text-level mutations."""
    kind = draw(st.sampled_from(["call", "record"]))
    text = _genuine_csv(
        kind,
        rows=draw(st.integers(0, 6)),
        header=draw(st.booleans()),
        bom=draw(st.booleans()),
        newline=draw(st.sampled_from(["\r\n", "\n", "\r"])),
    )
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "swap-lines", "truncate", "long-run", "header"]))
        if op == "insert":
            text = text[:at] + "".join(draw(st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4))) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "duplicate":
            size = draw(st.integers(1, 200))
            text = text[:at] + text[at : at + size] * draw(st.integers(2, 30)) + text[at:]
        elif op == "swap-lines":
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
                text = "".join(lines)
        elif op == "truncate":
            text = text[:at]
        elif op == "long-run":
            run = draw(st.sampled_from(["x", '"', ",", "é", "\n", '""']))
            text = text[:at] + run * draw(st.integers(1, 60_000)) + text[at:]
        else:
            names = CDR_NAMES if kind == "call" else RECORD_NAMES
            variant = draw(st.sampled_from(["upper", "missing", "extra", "dupe", "spaces"]))
            if variant == "upper":
                header = [n.upper() for n in names]
            elif variant == "missing":
                header = names[:-1]
            elif variant == "extra":
                header = [*names, "", "account_id", "新列"]
            elif variant == "dupe":
                header = [*names, names[0]]
            else:
                header = [f" {n} " for n in names]
            text = ",".join(header) + "\r\n" + text
    return kind, text


@st.composite
def compressible_entries(draw: st.DrawFn) -> tuple[str, bytes]:
    """One entry that deflates to almost nothing, below the 1 MiB ratio floor: up to 1 MiB of one
    long line (a huge field, an endless quote, a million tiny fields), or up to 64 KiB of short
    lines (many rows: slow under tracemalloc, and the 16 MiB test below covers volume)."""
    kind = draw(st.sampled_from(["call", "record"]))
    unit = draw(st.sampled_from([b"x", b"a,", b"ab,", b'"', b'""', b"\x00", "华".encode(), b"\n", b",\r\n"]))
    size = draw(st.integers(1, 64 * 1024 if b"\n" in unit else 1024 * 1024))
    prefix = ",".join(CDR_NAMES).encode() + b"\r\n" if draw(st.booleans()) else b""
    return kind, prefix + unit * (size // len(unit))


def _zip(entries: list[tuple[str, bytes]], compression: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 2, 3, 4, 6)), data, compress_type=compression)
    return out.getvalue()


@st.composite
def bills_with_mutated_csv(draw: st.DrawFn) -> bytes:
    compression = draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
    entries: list[tuple[str, bytes]] = []
    for number in range(1, draw(st.integers(1, 3)) + 1):
        kind, text = draw(mutated_csv_text())
        data = text.encode("utf-8")
        if draw(st.sampled_from([False] * 9 + [True])):  # now and then, damage the bytes too (invalid UTF-8)
            at = draw(st.integers(0, max(0, len(data) - 1)))
            data = data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at + 1 :]
        entries.append((entry_name(kind, number), data))
    return _zip(entries, compression)


@st.composite
def bills_with_compressible_entries(draw: st.DrawFn) -> bytes:
    kind, data = draw(compressible_entries())
    return _zip([(entry_name(kind, 1), data)], zipfile.ZIP_DEFLATED)


KINDS = {
    "mutated-csv": bills_with_mutated_csv(),
    "compressible": bills_with_compressible_entries(),
    "mutated-zip": mutated_bills(),
    "random-content": bills_with_random_content(),
    "random-bytes": st.binary(max_size=4096),
}
inputs = st.sampled_from(sorted(KINDS)).flatmap(lambda k: st.tuples(st.just(k), KINDS[k]))


# ---------------------------------------------------------------------------- the property


class Hang(Exception):
    pass


@contextlib.contextmanager
def hang_guard(seconds: int) -> Iterator[None]:
    """Interrupt the example (SIGALRM) if it runs for ``seconds``: a hang fails instead of blocking."""

    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def consume(path: Path, limits: BillLimits = LIMITS) -> int:
    """Read every entry the way the exporter does; return the rows read. Checks each row's shape."""
    rows = 0
    with BillFile(path, limits) as bill:
        for name in bill.cdr_files + bill.record_files:
            assert all(isinstance(c, str) for c in bill.header(name))
        for entry, line, row in itertools.chain(bill.iter_cdr(), bill.iter_records()):
            assert entry in bill.cdr_files + bill.record_files and line >= 1
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
            rows += 1
        for bad in bill.bad_rows:
            assert bad.line >= 1 and bad.reason
    return rows


def test_fuzz_bills_rows_or_a_bill_error_within_time_and_memory(tmp_path: Path) -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    peaks: dict[str, int] = {}
    started = time.monotonic()
    path = tmp_path / "fuzz.zip"

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=DEADLINE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(sample=inputs)
    def run(sample: tuple[str, bytes]) -> None:
        kind, content = sample
        path.write_bytes(content)
        tracemalloc.start()
        try:
            with hang_guard(HANG_SECONDS):
                try:
                    rows = consume(path)
                    outcome = "rows" if rows else "no rows"
                except BillError as exc:
                    outcome = type(exc).__name__
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert outcome != "BillError", "raise a specific BillError subclass"
        outcomes[(kind, outcome)] += 1
        peaks[kind] = max(peaks.get(kind, 0), peak)
        assert peak < PEAK_LIMIT, f"{kind}: {peak / 2**20:.1f} MiB traced at peak"

    run()
    elapsed = time.monotonic() - started
    print(f"\nbills fuzz: {sum(outcomes.values())} examples in {elapsed:.1f}s")
    for kind in sorted(KINDS):
        got = {o: n for (k, o), n in sorted(outcomes.items()) if k == kind}
        print(f"  {kind:<15} {sum(got.values()):>6}  peak {peaks.get(kind, 0) / 2**20:5.1f} MiB  {got}")
    if FUZZ_EXAMPLES >= 100:
        assert {k for k, _ in outcomes} == set(KINDS), outcomes
        assert any(o == "rows" for k, o in outcomes if k == "mutated-csv"), "mutated CSVs never reached the rows"


def test_memory_does_not_grow_with_the_size_of_the_bill(tmp_path: Path) -> None:
    """16 MiB of CDR rows in one entry, read with a peak of a few MiB: rows are streamed."""
    rng = random.Random(6)
    rows = [cdr_row(i, caller_no=str(rng.randrange(10**10, 10**11))) for i in range(300)]
    block = csv_bytes(rows)
    repeat = (16 * 1024 * 1024) // len(block) + 1
    data = csv_bytes([], CDR_NAMES) + block * repeat
    path = tmp_path / "big.zip"
    path.write_bytes(_zip([(f"{PREFIX}_call_1.csv", data)], zipfile.ZIP_DEFLATED))
    tracemalloc.start()
    try:
        with hang_guard(120):
            count = consume(path, BillLimits(max_ratio=10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300 * repeat
    assert len(data) > 16 * 1024 * 1024 and peak < 4 * 1024 * 1024, f"{peak / 2**20:.1f} MiB traced at peak"
