"""queryBillData → signed callback → downloadBillFile, against the ground truth (raw httpx)."""

from __future__ import annotations

import csv
import io
import re
import ssl
import zipfile
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import trustme

from local.ccfs_simulator import CDR_HEADER, INDEX_HEADER, TenantSpec
from tests.integration.conftest import wrapped

ENTRY = re.compile(r"^\d{17}\d{3}_(call|record)_(\d+)\.csv$")
ZIP_TYPE = "Application/Octet-stream;charset=UTF-8"


def _window(sim, hours=(8, 14)):
    day = sim.base_date + timedelta(days=2)
    return (
        datetime.combine(day, datetime.min.time()) + timedelta(hours=hours[0]),
        datetime.combine(day, datetime.min.time()) + timedelta(hours=hours[1], seconds=-1),
    )


def _ask(raw, sim, receiver_url, *, account="acct001", data_type="call_record", window=None, **extra):
    begin, end = window or _window(sim)
    body = {
        "beginTime": f"{begin:%Y-%m-%d %H:%M:%S}",
        "endTime": f"{end:%Y-%m-%d %H:%M:%S}",
        "dataType": data_type,
        "callBackURL": receiver_url,
        **extra,
    }
    if account is not ...:
        body["accountId"] = account
    reply = raw.json("queryBillData", wrapped(body))
    assert reply["resultCode"] == "0", reply
    return reply["resultData"]["responseId"]


def _download(raw, name):
    response = raw.post("downloadBillFile", wrapped({"billFileName": name}))
    assert response.status_code == 200
    assert response.headers["content-type"] == ZIP_TYPE  # exactly, sic
    return response.content


def _read_zip(content):
    """{kind: [(number, header, rows)]} with rows as dicts, entries checked against the naming rule."""
    found: dict[str, list] = {"call": [], "record": []}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        prefixes = set()
        for name in archive.namelist():
            match = ENTRY.match(name)
            assert match, name
            prefixes.add(name.split("_")[0])
            text = archive.read(name).decode("utf-8")
            reader = csv.reader(io.StringIO(text, newline=""))
            header, *rows = list(reader)
            found[match[1]].append((int(match[2]), header, [dict(zip(header, r, strict=True)) for r in rows]))
        assert len(prefixes) == 1
    for parts in found.values():
        parts.sort(key=lambda p: p[0])
        assert [p[0] for p in parts] == list(range(1, len(parts) + 1))
    return found


def _rows(parts):
    return [row for _, _, rows in parts for row in rows]


def test_bill_flow_matches_the_ground_truth(ccfs_sim, raw_factory, receiver_factory):
    raw, receiver = raw_factory(ccfs_sim), receiver_factory(ccfs_sim)
    rid = _ask(raw, ccfs_sim, receiver.url)
    assert receiver.wait(1)
    callback = receiver.received[0]
    assert callback.ok, callback.reason
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert callback.json == {
        "request": {"version": "2.0"},
        "msgBody": {"responseId": rid, "billFileName": f"{today:%Y%m%d}_{rid}.zip", "accountId": "acct001"},
    }
    assert {k.lower(): v for k, v in callback.headers}["content-type"] == "application/json;charset=UTF-8"
    assert callback.path == "/ccfs/callback"
    found = _read_zip(_download(raw, callback.json["msgBody"]["billFileName"]))
    truth = ccfs_sim.truth("acct001", *_window(ccfs_sim))
    assert truth.cdr_rows and truth.index_rows
    assert [h for _, h, _ in found["call"]] == [list(CDR_HEADER)]
    assert CDR_HEADER[-1] == "leave_reason" and len(CDR_HEADER) == 22
    assert [h for _, h, _ in found["record"]] == [list(INDEX_HEADER)]
    assert _rows(found["call"]) == truth.cdr_rows
    assert _rows(found["record"]) == truth.index_rows
    assert ccfs_sim.wait_for("callbacks_acked")
    counters = ccfs_sim.counters()
    assert (counters["callbacks_sent"], counters["callbacks_acked"], counters["bills_built"]) == (1, 1, 1)
    assert counters.get("callbacks_failed", 0) == 0
    assert ccfs_sim.queries()[0]["status"] == "acked"


@pytest.mark.parametrize(("data_type", "kinds"), [("call", {"call"}), ("record", {"record"})])
def test_data_type_selects_the_files(ccfs_sim, raw_factory, receiver_factory, data_type, kinds):
    raw, receiver = raw_factory(ccfs_sim), receiver_factory(ccfs_sim)
    _ask(raw, ccfs_sim, receiver.url, data_type=data_type)
    assert receiver.wait(1)
    found = _read_zip(_download(raw, receiver.received[0].json["msgBody"]["billFileName"]))
    assert {k for k, parts in found.items() if parts} == kinds


def test_large_exports_are_split_into_numbered_files(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(split_rows=7)
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(1)
    found = _read_zip(_download(raw, receiver.received[0].json["msgBody"]["billFileName"]))
    truth = sim.truth("acct001", *_window(sim))
    assert len(found["call"]) == -(-len(truth.cdr_rows) // 7) > 2
    assert all(len(rows) == 7 for _, _, rows in found["call"][:-1])
    assert all(header == list(CDR_HEADER) for _, header, _ in found["call"])
    assert _rows(found["call"]) == truth.cdr_rows
    assert _rows(found["record"]) == truth.index_rows


# Protocol §4 variants. The expected bytes are derived here from the option, independently of
# local/ccfs_simulator/bills.py: names by regex, encoding and line ends from the raw bytes.
VARIANTS = {
    "plain": ({"bill_entry_names": "plain"}, r"^\d{20}_(call|record)\.csv$"),
    "upper-ext": ({"csv_extension": ".CSV"}, r"^\d{20}_(call|record)_1\.CSV$"),
    "bom": ({"csv_encoding": "utf-8-sig"}, None),
    "gb18030": ({"csv_encoding": "gb18030"}, None),
    "lf": ({"csv_line_ending": "\n"}, None),
    "no-header": ({"csv_header": "none"}, None),
    "spaced-upper": ({"csv_header": "spaced-upper"}, None),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bill_format_variants(ccfs_sim_factory, raw_factory, receiver_factory, variant):
    options, name_pattern = VARIANTS[variant]
    sim = ccfs_sim_factory(split_rows=1_000_000 if variant == "plain" else 50_000, **options)
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(1)
    content = _download(raw, receiver.received[0].json["msgBody"]["billFileName"])
    truth = sim.truth("acct001", *_window(sim))
    pattern = re.compile(name_pattern) if name_pattern else ENTRY
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        assert len(names) == 2 and all(pattern.match(n) for n in names), names
        found = {}
        for name in names:
            data = archive.read(name)
            assert data.startswith(b"\xef\xbb\xbf") == (variant == "bom")
            if variant == "lf":
                assert b"\r\n" not in data and data.count(b"\n") > 2
            else:
                assert data.count(b"\r\n") == data.count(b"\n") > 2
            text = data.decode({"bom": "utf-8-sig", "gb18030": "gb18030"}.get(variant, "utf-8"))
            lines = list(csv.reader(io.StringIO(text, newline="")))
            kind = "call" if "_call" in name else "record"
            columns = list(CDR_HEADER if kind == "call" else INDEX_HEADER)
            if variant == "no-header":
                rows = lines
            else:
                header, *rows = lines
                expected_header = [f" {c.upper()} " for c in columns] if variant == "spaced-upper" else columns
                assert header == expected_header
            found[kind] = [dict(zip(columns, r, strict=True)) for r in rows]
    assert found["call"] == truth.cdr_rows and found["record"] == truth.index_rows


def test_extra_entries_are_added_to_the_bill(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(bill_extra_entries=["readme.txt", "notes/summary.csv"])
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(1)
    content = _download(raw, receiver.received[0].json["msgBody"]["billFileName"])
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        assert sorted(n for n in names if not ENTRY.match(n)) == ["notes/summary.csv", "readme.txt"]
        assert archive.read("readme.txt").strip()  # some text, not bill rows
        assert len(names) == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bill_entry_names", "numbers"),
        ("csv_extension", ".txt"),
        ("csv_encoding", "latin-1"),
        ("csv_line_ending", "\r"),
        ("csv_header", "upper"),
        ("bill_extra_entries", ["../escape.txt"]),
    ],
)
def test_bad_bill_format_options_are_refused(field, value):
    from local.ccfs_simulator import SimulatorConfig

    with pytest.raises(ValueError, match=field):
        SimulatorConfig(**{field: value}).validate()


def test_account_id_absent_empty_or_unknown(ccfs_sim_factory, raw_factory, receiver_factory):
    tenants = [TenantSpec("acct001", calls_per_day=30), TenantSpec("acct002", "Europe/Berlin", calls_per_day=30)]
    sim = ccfs_sim_factory(tenants=tenants)
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    window = _window(sim, (0, 24))
    _ask(raw, sim, receiver.url, account=..., window=window)
    assert receiver.wait(1)
    assert "accountId" not in receiver.received[0].json["msgBody"]
    everyone = _read_zip(_download(raw, receiver.received[0].json["msgBody"]["billFileName"]))
    truth = sim.truth(None, *window)
    assert {r["account_id"] for r in truth.cdr_rows} == {"acct001", "acct002"}
    assert _rows(everyone["call"]) == truth.cdr_rows
    _ask(raw, sim, receiver.url, account="", window=window)
    assert receiver.wait(2)
    assert receiver.received[1].json["msgBody"]["accountId"] == ""
    _ask(raw, sim, receiver.url, account="nobody", window=window)
    assert receiver.wait(3)
    empty = _read_zip(_download(raw, receiver.received[2].json["msgBody"]["billFileName"]))
    assert _rows(empty["call"]) == [] and [h for _, h, _ in empty["call"]] == [list(CDR_HEADER)]


def test_filters_narrow_the_bill(ccfs_sim, raw_factory, receiver_factory):
    raw, receiver = raw_factory(ccfs_sim), receiver_factory(ccfs_sim)
    begin, end = _window(ccfs_sim)
    call = next(c for c in ccfs_sim.center.calls_between("acct001", begin, end) if c.recordings)
    _ask(raw, ccfs_sim, receiver.url, callId=call.call_id)
    assert receiver.wait(1)
    found = _read_zip(_download(raw, receiver.received[0].json["msgBody"]["billFileName"]))
    assert _rows(found["call"]) == call.legs
    assert _rows(found["record"]) == call.index_rows


def test_callback_url_query_is_signed(ccfs_sim, raw_factory, receiver_factory):
    raw, receiver = raw_factory(ccfs_sim), receiver_factory(ccfs_sim, path="/prod/cb?tenant=a%20b&x=")
    _ask(raw, ccfs_sim, receiver.url)
    assert receiver.wait(1)
    assert receiver.received[0].ok, receiver.received[0].reason
    assert receiver.received[0].path == "/prod/cb?tenant=a%20b&x="


def test_callback_is_retried_until_acknowledged(ccfs_sim, raw_factory, receiver_factory):
    script = [(500, {"error": "busy"}), (200, {"resultCode": "1", "resultDesc": "later"}), (200, b"not json")]
    raw, receiver = raw_factory(ccfs_sim), receiver_factory(ccfs_sim, script=script)
    rid = _ask(raw, ccfs_sim, receiver.url)
    assert receiver.wait(4)
    assert ccfs_sim.wait_for("callbacks_acked")
    assert all(r.ok for r in receiver.received)
    assert {r.json["msgBody"]["responseId"] for r in receiver.received} == {rid}
    counters = ccfs_sim.counters()
    assert (counters["callbacks_sent"], counters["callbacks_failed"], counters["callbacks_acked"]) == (4, 3, 1)
    assert ccfs_sim.queries()[0]["attempts"] == 4


def test_callback_gives_up_after_max_tries(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(callback_max_tries=3)
    raw, receiver = raw_factory(sim), receiver_factory(sim, script=[(503, {})] * 10)
    _ask(raw, sim, receiver.url)
    assert sim.wait_for("callbacks_given_up")
    counters = sim.counters()
    assert (counters["callbacks_sent"], counters["callbacks_failed"]) == (3, 3)
    assert len(receiver.received) == 3 and sim.queries()[0]["status"] == "given_up"


def test_unreachable_callback_counts_as_failed(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(callback_max_tries=2)
    _ask(raw_factory(sim), sim, "http://127.0.0.1:9/nothing-listens-here")
    assert sim.wait_for("callbacks_given_up")
    assert sim.counters()["callbacks_failed"] == 2


def test_duplicate_callback_fault(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(faults={"duplicate_callback_rate": 1})
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(2)
    assert receiver.received[0].body == receiver.received[1].body and all(r.ok for r in receiver.received)
    assert sim.wait_for("callbacks_duplicated")
    assert sim.counters()["callbacks_acked"] == 1


def test_lost_callback_fault(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(faults={"lost_callback_rate": 1})
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    rid = _ask(raw, sim, receiver.url)
    assert sim.wait_for("callbacks_lost")
    assert receiver.received == [] and sim.counters().get("callbacks_sent", 0) == 0
    assert sim.queries()[0]["status"] == "lost"
    # the bill was still built: a client that reconciles can fetch it by name
    name = sim.queries()[0]["billFileName"]
    assert name.endswith(f"_{rid}.zip") and _download(raw, name)[:2] == b"PK"


def test_bad_signature_fault_sends_one_bad_then_a_good_callback(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(faults={"bad_signature_callback_rate": 1})
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(2)
    assert [(r.ok, r.reason) for r in receiver.received] == [(False, "signature"), (True, "ok")]
    assert sim.wait_for("callbacks_acked")
    counters = sim.counters()
    assert counters["callbacks_bad_signature"] == 1 and counters["callbacks_failed"] == 1
    assert counters.get("callbacks_bad_signature_accepted", 0) == 0


def test_clock_skew_fault_skews_callback_timestamps(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(callback_max_tries=1, faults={"clock_skew_seconds": -3600})
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    _ask(raw, sim, receiver.url)
    assert receiver.wait(1)
    first = receiver.received[0]
    assert (first.ok, first.reason) == (False, "skew")
    lag = datetime.now(UTC) - datetime.strptime(first.timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=59) < lag < timedelta(minutes=61)


def _tls_receiver(receiver_factory, sim, tmp_path):
    authority = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "callback-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return receiver_factory(sim, ssl_context=context), str(bundle)


def test_https_callback_is_verified_against_the_given_ca(ccfs_sim_factory, raw_factory, receiver_factory, tmp_path):
    first = ccfs_sim_factory(callback_max_tries=1)
    receiver, bundle = _tls_receiver(receiver_factory, first, tmp_path)
    _ask(raw_factory(first), first, receiver.url)
    assert first.wait_for("callbacks_given_up")  # the system trust store does not know the test CA
    assert receiver.received == []

    second = ccfs_sim_factory(callback_verify=bundle, sk=first.sk)
    _ask(raw_factory(second), second, receiver.url)
    assert receiver.wait(1) and receiver.received[0].ok
    assert second.wait_for("callbacks_acked")


def test_download_before_the_bill_is_ready_is_not_found_and_stop_cancels_the_callback(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(callback_delay=60)
    raw = raw_factory(sim)
    _ask(raw, sim, "http://127.0.0.1:9/cb")
    name = sim.queries()[0]["billFileName"]
    assert raw.json("downloadBillFile", wrapped({"billFileName": name}))["resultCode"] == "0300012"
    started = datetime.now()
    sim.stop()
    assert datetime.now() - started < timedelta(seconds=5)
    assert sim.counters().get("callbacks_sent", 0) == 0
