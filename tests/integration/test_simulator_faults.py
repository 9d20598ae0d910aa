"""Fault injection: every knob observable on the wire and in the counters (raw httpx)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ccfs.models import format_time
from tests.integration.conftest import wrapped


def _calls(sim, count=1):
    day = sim.base_date + timedelta(days=1)
    return [c for c in sim.calls("acct001", day) if len(c.recordings) == count]


def _url_body(call):
    rec = call.recordings[0]
    return {
        "callId": call.call_id,
        "beginTime": format_time(rec.call_begin),
        "endTime": format_time(rec.call_end),
        "version": "2.0",
    }


def _query_body(sim, callback="http://127.0.0.1:9/cb"):
    day = sim.base_date + timedelta(days=1)
    return wrapped(
        {
            "beginTime": f"{day} 00:00:00",
            "endTime": f"{day} 01:00:00",
            "dataType": "call",
            "callBackURL": callback,
        }
    )


def test_error_rate_answers_500_or_503_on_ccfs_operations_only(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory()
    raw = raw_factory(sim)
    call = _calls(sim)[0]
    url = raw.json("getRecordFileUrlFromObs", _url_body(call))["resultData"]["url"]
    sim.set_faults(error_rate=1)
    statuses = set()
    for _ in range(12):
        response = raw.post("queryBillData", _query_body(sim))
        assert response.headers["content-type"] == "text/html"
        statuses.add(response.status_code)
    assert statuses == {500, 503}
    assert raw.post("downloadRecordFile", wrapped({"fileName": call.recordings[0].file_name})).status_code >= 500
    assert raw.get(url).status_code == 200  # object storage is not a CC-FS operation
    assert sim.counters()["errors_injected"] == 13
    assert sim.queries() == []


def test_errors_are_injected_after_authentication(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"error_rate": 1})
    assert raw_factory(sim).post("queryBillData", _query_body(sim), sk="wrong").status_code == 401
    assert "errors_injected" not in sim.counters()


def test_throttling_codes_per_operation_kind(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"throttle_rate": 1})
    raw = raw_factory(sim)
    rec = _calls(sim)[0].recordings[0]
    assert raw.json("queryBillData", _query_body(sim))["resultCode"] == "0300009"
    assert raw.json("getRecordFileUrlFromObs", _url_body(_calls(sim)[0]))["resultCode"] == "0300009"
    for op, body in [
        ("downloadBillFile", wrapped({"billFileName": "20240101_9239cb50a8384bb0ab503441bf089446.zip"})),
        ("downloadRecordFile", wrapped({"fileName": rec.file_name})),
        ("downloadRecord", wrapped({"fileName": rec.call_id})),
    ]:
        reply = raw.json(op, body)
        assert (reply["resultCode"], reply["resultData"]) == ("0300008", ""), op
    assert sim.counters()["throttles_injected"] == 5
    sim.set_faults(throttle_rate=0)
    assert raw.json("queryBillData", _query_body(sim))["resultCode"] == "0"


def test_throttling_comes_in_bursts(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"throttle_rate": 0.15, "throttle_burst": 3})
    raw = raw_factory(sim)
    body = _url_body(_calls(sim)[0])
    codes = [raw.json("getRecordFileUrlFromObs", body)["resultCode"] for _ in range(60)]
    runs, current = [], 0
    for code in [*codes, "0"]:
        if code == "0300009":
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert runs and all(run % 3 == 0 for run in runs), codes
    assert set(codes) == {"0", "0300009"}
    assert sim.counters()["throttles_injected"] == sum(runs)


def _read_until_cut(raw, target, progress):
    """Stream ``target`` (a URL or a built request), recording progress as it goes."""
    request = raw.http.build_request("GET", target) if isinstance(target, str) else target
    with raw.http.stream(request.method, request.url, headers=request.headers, content=request.content) as response:
        progress["declared"] = int(response.headers["content-length"])
        for chunk in response.iter_raw():
            progress["received"] += len(chunk)


def _partial(raw, target):
    """(declared length, bytes received) of a response the server cut mid-body."""
    progress = {"declared": -1, "received": 0}
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # h11: incomplete body
        _read_until_cut(raw, target, progress)
    return progress["declared"], progress["received"]


def test_reset_fault_cuts_binary_downloads_mid_body(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(min_recording_bytes=200_000, max_recording_bytes=300_000)
    raw, receiver = raw_factory(sim), receiver_factory(sim)
    call = _calls(sim)[0]
    url = raw.json("getRecordFileUrlFromObs", _url_body(call))["resultData"]["url"]
    raw.json("queryBillData", _query_body(sim, receiver.url))
    assert receiver.wait(1)
    bill = receiver.received[0].json["msgBody"]["billFileName"]
    sim.set_faults(reset_rate=1)
    for target in (
        url,
        raw.request("downloadRecordFile", wrapped({"fileName": call.recordings[0].file_name})),
        raw.request("downloadBillFile", wrapped({"billFileName": bill})),
    ):
        declared, received = _partial(raw, target)
        assert 0 < received < declared
    assert sim.counters()["resets_injected"] == 3
    # JSON replies are never cut, and the next request on a new connection works
    sim.set_faults(reset_rate=0)
    assert raw.get(url).status_code == 200


def test_reset_fault_cuts_a_chunked_zip(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"reset_rate": 1})
    raw = raw_factory(sim)
    call = _calls(sim, 2)[0]
    with pytest.raises(httpx.RemoteProtocolError):
        raw.post("downloadRecord", wrapped({"fileName": call.call_id}))
    assert sim.counters()["resets_injected"] == 1


def test_not_found_calls_and_rate(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory()
    raw = raw_factory(sim)
    hidden, visible = _calls(sim)[:2]
    sim.set_faults(not_found_calls={hidden.call_id})
    assert raw.json("getRecordFileUrlFromObs", _url_body(hidden))["resultCode"] == "0300012"
    assert raw.json("getRecordFileUrlFromObs", _url_body(visible))["resultCode"] == "0"
    # the recording itself is still there for the fallback
    fallback = raw.post("downloadRecordFile", wrapped({"fileName": hidden.recordings[0].file_name}))
    assert fallback.content[:4] == b"RIFF"
    sim.set_faults(not_found_calls=set(), not_found_rate=1)
    assert raw.json("getRecordFileUrlFromObs", _url_body(visible))["resultCode"] == "0300012"
    assert sim.counters()["not_found_injected"] == 2


def test_expired_url_fault(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"expired_url_rate": 1})
    raw = raw_factory(sim)
    url = raw.json("getRecordFileUrlFromObs", _url_body(_calls(sim)[0]))["resultData"]["url"]
    assert int(parse_qs(urlsplit(url).query)["Expires"][0]) < datetime.now(UTC).timestamp()
    response = raw.get(url)
    assert response.status_code == 403 and b"expired" in response.content
    counters = sim.counters()
    assert counters["expired_urls_issued"] == 1 and counters["obs_403_expired"] == 1
    sim.set_faults(expired_url_rate=0)
    fresh = raw.json("getRecordFileUrlFromObs", _url_body(_calls(sim)[0]))["resultData"]["url"]
    assert raw.get(fresh).status_code == 200


def test_latency_fault(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(faults={"latency_ms": 150})
    raw = raw_factory(sim)
    raw.json("queryBillData", _query_body(sim))  # warm the connection
    started = time.perf_counter()
    raw.json("queryBillData", _query_body(sim))
    assert time.perf_counter() - started >= 0.15
    assert sim.counters()["latency_injected"] == 2


def _error_pattern(sim, raw, count=24):
    return [raw.post("queryBillData", _query_body(sim)).status_code for _ in range(count)]


def test_faults_are_deterministic_per_fault_seed(ccfs_sim_factory, raw_factory):
    a = ccfs_sim_factory(faults={"error_rate": 0.5, "fault_seed": 11})
    b = ccfs_sim_factory(faults={"error_rate": 0.5, "fault_seed": 11})
    c = ccfs_sim_factory(faults={"error_rate": 0.5, "fault_seed": 12})
    pattern_a = _error_pattern(a, raw_factory(a))
    assert pattern_a == _error_pattern(b, raw_factory(b))
    assert pattern_a != _error_pattern(c, raw_factory(c))
    assert 200 in pattern_a and set(pattern_a) & {500, 503}
    # set_faults restarts the streams: the same pattern again
    a.set_faults(error_rate=0.5)
    assert _error_pattern(a, raw_factory(a)) == pattern_a


def test_set_faults_rejects_bad_values(ccfs_sim):
    with pytest.raises(ValueError, match="error_rate"):
        ccfs_sim.set_faults(error_rate=1.5)
    with pytest.raises(TypeError, match="unknown"):
        ccfs_sim.set_faults(eror_rate=0.5)
    assert ccfs_sim.faults.error_rate == 0


def test_late_recordings_answer_no_data_everywhere_until_the_sync_lag_passed(ccfs_sim_factory, raw_factory):
    """Seed 001's scheduled sync: a late recording is 0300012 from every recording operation until
    ``sync_lag_seconds`` after it was first asked for; the others are there at once."""
    offset = [0.0]
    sim = ccfs_sim_factory(
        clock=lambda: time.time() + offset[0], faults={"late_recording_rate": 0.5, "sync_lag_seconds": 120}
    )
    raw = raw_factory(sim)
    codes = {c.call_id: raw.json("getRecordFileUrlFromObs", _url_body(c))["resultCode"] for c in _calls(sim)[:12]}
    late = [c for c in _calls(sim)[:12] if codes[c.call_id] == "0300012"]
    assert late and len(late) < 12 and set(codes.values()) == {"0", "0300012"}
    assert sim.counters()["late_recordings"] == len(late)
    name = late[0].recordings[0].file_name
    assert raw.json("downloadRecordFile", wrapped({"fileName": name}))["resultCode"] == "0300012"
    offset[0] = 119
    assert raw.json("getRecordFileUrlFromObs", _url_body(late[0]))["resultCode"] == "0300012"
    offset[0] = 121
    url = raw.json("getRecordFileUrlFromObs", _url_body(late[0]))["resultData"]["url"]
    assert raw.get(url).content[:4] == b"RIFF"
    assert raw.post("downloadRecordFile", wrapped({"fileName": name})).content[:4] == b"RIFF"
    assert sim.counters()["late_recordings"] == len(late)  # the same recordings, counted once
