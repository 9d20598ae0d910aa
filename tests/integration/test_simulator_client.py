"""The project's CcfsClient (and bill reader) against the simulator: the two must agree end to end."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from ccfs.bills import BillFile
from ccfs.client import CcfsClient, CcfsConfig, RetryPolicy
from ccfs.errors import CcfsAuthError, CcfsNotFound, CcfsTransientError


def _client(sim, sleep=lambda _s: None, attempts=4, sk=None):
    config = CcfsConfig(
        sim.base_url, sim.ak, sk or sim.sk, ca_bundle=sim.ca_bundle, retry=RetryPolicy(attempts=attempts)
    )
    return CcfsClient(config, sleep=sleep)


def _day(sim):
    return sim.base_date + timedelta(days=1)


def _call(sim, count):
    return next(c for c in sim.calls("acct001", _day(sim)) if len(c.recordings) == count)


def _truth_of(sim, rec):
    truth = sim.truth(rec.account_id, rec.call_begin - timedelta(days=1), rec.call_begin)
    return next(r for r in truth.recordings if r.file_name == rec.file_name)


def test_client_bill_flow_and_bill_reader_match_the_truth(ccfs_sim, receiver_factory, tmp_path):
    receiver = receiver_factory(ccfs_sim)
    begin = datetime.combine(_day(ccfs_sim), datetime.min.time())
    end = begin + timedelta(days=1, seconds=-1)
    with _client(ccfs_sim) as client:
        rid = client.query_bill_data(begin, end, callback_url=receiver.url, account_id="acct001")
        assert receiver.wait(1) and receiver.received[0].ok
        name = receiver.received[0].json["msgBody"]["billFileName"]
        assert name.endswith(f"_{rid}.zip")
        path = tmp_path / name
        with path.open("wb") as sink:
            written = client.download_bill_file(name, sink)
    assert written == path.stat().st_size
    truth = ccfs_sim.truth("acct001", begin, end)
    with BillFile(path) as bill:
        cdr = [row for _entry, _line, row in bill.iter_cdr()]
        index = [row for _entry, _line, row in bill.iter_records()]
        assert bill.bad_rows == [] and bill.unexpected_entries == []
    assert cdr == truth.cdr_rows  # the unknown trailing leave_reason column survives
    assert index == truth.index_rows


def test_client_recording_paths(ccfs_sim):
    single, double = _call(ccfs_sim, 1), _call(ccfs_sim, 2)
    rec = single.recordings[0]
    expected = _truth_of(ccfs_sim, rec)
    with _client(ccfs_sim) as client:
        [url] = client.get_record_file_urls(single.call_id, rec.call_begin, rec.call_end)
        body = client.http.get(url).content
        assert hashlib.sha256(body).hexdigest() == expected.sha256

        utc_begin = rec.call_begin.replace(tzinfo=UTC) - timedelta(hours=8)
        utc = client.get_record_file_urls(
            single.call_id, utc_begin.replace(tzinfo=None), utc_begin.replace(tzinfo=None), version=None
        )
        assert len(utc) == 1

        urls = client.get_record_file_urls(double.call_id, double.begin, double.end)
        served = [hashlib.sha256(client.http.get(u).content).hexdigest() for u in urls]
        assert served == [_truth_of(ccfs_sim, r).sha256 for r in double.recordings]  # start-time order

        sink = io.BytesIO()
        assert client.download_record_file(rec.file_name, sink) == expected.size
        assert hashlib.sha256(sink.getvalue()).hexdigest() == expected.sha256

        sink = io.BytesIO()
        written, media_type = client.download_record(rec.original_file_name, sink)  # backslashes: client converts
        assert (written, media_type) == (expected.size, "application/octet-stream")
        assert hashlib.sha256(sink.getvalue()).hexdigest() == expected.sha256

        sink = io.BytesIO()
        client.download_record(double.call_id, sink)
        with zipfile.ZipFile(sink) as archive:
            assert len(archive.namelist()) == 2


def test_client_sees_typed_errors(ccfs_sim):
    call = _call(ccfs_sim, 1)
    with _client(ccfs_sim) as client:
        with pytest.raises(CcfsNotFound):
            client.get_record_file_urls("1637742300-27", call.begin, call.end)
        with pytest.raises(CcfsNotFound):
            client.download_record_file("/10/1/record/17/10001/0101999.wav", io.BytesIO())
    with _client(ccfs_sim, sk="wrong-sk") as client, pytest.raises(CcfsAuthError):
        client.get_record_file_urls(call.call_id, call.begin, call.end)
    ccfs_sim.set_faults(throttle_rate=1, throttle_burst=100)
    with _client(ccfs_sim, attempts=2) as client:
        with pytest.raises(CcfsTransientError, match="0300009"):
            client.get_record_file_urls(call.call_id, call.begin, call.end)
        with pytest.raises(CcfsTransientError, match="0300008"):
            client.download_record_file(call.recordings[0].file_name, io.BytesIO())
    assert ccfs_sim.counters()["throttles_injected"] == 4
    assert ccfs_sim.counters()["http_401"] == 1


def test_client_retries_through_injected_faults(ccfs_sim):
    call = _call(ccfs_sim, 1)
    expected = _truth_of(ccfs_sim, call.recordings[0])
    # every download is cut until the client's first backoff sleep heals the server
    ccfs_sim.set_faults(reset_rate=1)
    with _client(ccfs_sim, sleep=lambda _s: ccfs_sim.set_faults(reset_rate=0)) as client:
        sink = io.BytesIO()
        client.download_record_file(call.recordings[0].file_name, sink)
    assert hashlib.sha256(sink.getvalue()).hexdigest() == expected.sha256
    assert ccfs_sim.counters()["resets_injected"] == 1

    ccfs_sim.set_faults(throttle_rate=1, throttle_burst=2)
    sleeps = []

    def heal(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            ccfs_sim.set_faults(throttle_rate=0)

    with _client(ccfs_sim, sleep=heal) as client:
        urls = client.get_record_file_urls(call.call_id, call.begin, call.end)
    assert len(urls) == 1 and len(sleeps) == 2
    assert ccfs_sim.counters()["throttles_injected"] == 2

    ccfs_sim.set_faults(error_rate=1)
    with _client(ccfs_sim, attempts=3) as client, pytest.raises(CcfsTransientError, match="gave up after 3"):
        client.get_record_file_urls(call.call_id, call.begin, call.end)
    assert ccfs_sim.counters()["errors_injected"] == 3
