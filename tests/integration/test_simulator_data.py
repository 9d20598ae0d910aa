"""The synthetic call center: determinism, CDR/index shape, WAV validity, time zones, concurrency."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from ccfs.models import format_time
from local.ccfs_simulator import Simulator, SimulatorConfig, TenantSpec
from tests.integration.conftest import assert_alaw_wav, parse_wav, wrapped

BASE = date(2024, 3, 1)


def _all_calls(sim, account="acct001", days=3):
    return [c for d in range(days) for c in sim.calls(account, sim.base_date + timedelta(days=d))]


def test_same_seed_same_data_other_seed_other_data():
    def snapshot(seed):
        sim = Simulator(SimulatorConfig(seed=seed, base_date=BASE))
        truth = sim.truth("acct001", datetime(2024, 3, 2), datetime(2024, 3, 2, 6))
        return [c.legs for c in sim.calls("acct001", BASE)], truth

    legs_a, truth_a = snapshot(5)
    legs_b, truth_b = snapshot(5)
    legs_c, _ = snapshot(6)
    assert legs_a == legs_b and truth_a == truth_b and truth_a.recordings
    assert legs_a != legs_c
    # a day does not depend on which days were generated before it
    sim = Simulator(SimulatorConfig(seed=5, base_date=BASE))
    sim.calls("acct001", BASE + timedelta(days=3))
    assert [c.legs for c in sim.calls("acct001", BASE)] == legs_a


def test_cdr_legs_and_index_rows_look_like_cc_fs():
    sim = Simulator(SimulatorConfig(base_date=BASE))
    calls = _all_calls(sim)
    assert len(calls) == 600
    for call in calls:
        assert re.fullmatch(r"\d{10}-\d+", call.call_id) and len(call.call_id) <= 25
        epoch = int(call.call_id.split("-")[0])
        assert datetime.fromtimestamp(epoch, ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) == call.begin
        numbers = [leg["call_id_num"] for leg in call.legs]
        assert numbers == [*(str(i) for i in range(1, len(numbers))), "-1"]
        assert call.legs[0]["call_begin"] == format_time(call.begin)
        for leg in call.legs:
            assert list(leg) == [*CDR_COLUMNS, "leave_reason"]
            assert leg["call_id"] == call.call_id and leg["account_id"] == "acct001"
            assert leg["device_type"] in {"1", "2", "3"} and leg["release_cause"].isdigit()
            assert leg["call_begin"] <= leg["call_end"]
        if call.call_type == "0":
            assert [leg["device_type"] for leg in call.legs] == ["3", "1", "2"][: len(call.legs)]
        for rec in call.recordings:
            row = rec.row
            assert list(row) == list(RECORD_COLUMNS)
            assert re.fullmatch(r"/10/1/record/\d+/\d+/\d{7,}\.wav", row["file_name"])
            assert re.fullmatch(r"X:\\\d+\\0\\\d{8}\\\d+\\\d+\.V3", row["original_file_name"])
            assert row["media_type"] == "5" and row["call_type"] == call.call_type
            assert format_time(call.begin) <= row["call_begin"] <= row["call_end"] <= format_time(call.end)
            assert row["agent_id"] == call.agent_id != ""
    recorded = [c for c in calls if c.recordings]
    doubles = [c for c in recorded if len(c.recordings) == 2]
    assert 0.6 < len(recorded) / len(calls) < 0.8
    assert 0.04 < len(doubles) / len(recorded) < 0.2
    assert max(len(c.recordings) for c in calls) == 2
    names = [r.file_name for c in calls for r in c.recordings]
    assert len(set(names)) == len(names)
    assert len({c.call_id for c in calls}) == len(calls)
    types = Counter(c.call_type for c in calls)
    assert types["0"] > types["1"] > 0


def test_every_generated_wav_is_valid_and_matches_the_truth(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(
        min_recording_bytes=60, max_recording_bytes=400, tenants=[TenantSpec("acct001", calls_per_day=120)]
    )
    raw = raw_factory(sim)
    day = sim.base_date + timedelta(days=1)
    truth = sim.truth("acct001", datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time()))
    assert len(truth.recordings) > 50
    sizes = set()
    for rec in truth.recordings:
        response = raw.post("downloadRecordFile", wrapped({"fileName": rec.file_name}))
        assert len(response.content) == rec.size and 60 <= rec.size <= 400
        assert hashlib.sha256(response.content).hexdigest() == rec.sha256
        assert_alaw_wav(response.content)
        sizes.add(rec.size)
    assert len(sizes) > 20


def test_big_recordings_have_the_exact_size(ccfs_sim_factory, raw_factory):
    probe = Simulator(SimulatorConfig(base_date=BASE))
    call = next(c for c in probe.calls("acct001", BASE) if len(c.recordings) == 1)
    size = 3 * 1024 * 1024 + 1  # odd: the data chunk is odd and its pad byte is omitted
    sim = ccfs_sim_factory(base_date=BASE, big_recordings={call.call_id: size})
    raw = raw_factory(sim)
    rec = next(c for c in sim.calls("acct001", BASE) if c.call_id == call.call_id).recordings[0]
    assert rec.size == size
    body = {
        "callId": call.call_id,
        "beginTime": format_time(rec.call_begin),
        "endTime": format_time(rec.call_begin),
        "version": "2.0",
    }
    url = raw.json("getRecordFileUrlFromObs", body)["resultData"]["url"]
    content = raw.get(url).content
    assert len(content) == size
    fields = parse_wav(content)
    assert fields["data_size"] == size - 58 and fields["fact_samples"] == size - 58
    assert_alaw_wav(content)
    assert hashlib.sha256(content).hexdigest() == sim.recording_sha256(rec)
    # and at runtime
    other = next(c for c in sim.calls("acct001", BASE) if c.recordings and c.call_id != call.call_id)
    sim.set_big_recording(other.call_id, 1_000_000)
    again = raw.post("downloadRecordFile", wrapped({"fileName": other.recordings[0].file_name}))
    assert len(again.content) == 1_000_000
    assert_alaw_wav(again.content)


def test_truth_window_is_inclusive_on_the_first_leg():
    sim = Simulator(SimulatorConfig(base_date=BASE))
    call = sim.calls("acct001", BASE)[10]
    exact = sim.truth("acct001", call.begin, call.begin)
    assert {r["call_id"] for r in exact.cdr_rows} == {call.call_id}
    assert exact.cdr_rows == call.legs and exact.index_rows == call.index_rows
    later = sim.truth("acct001", call.begin + timedelta(seconds=1), call.begin + timedelta(hours=1))
    assert call.call_id not in {r["call_id"] for r in later.cdr_rows}
    assert sim.truth("nobody", call.begin, call.begin).cdr_rows == []
    assert sim.truth("acct001", datetime(2020, 1, 1), datetime(2020, 1, 2)).cdr_rows == []  # outside the data


def test_tenants_in_other_time_zones(ccfs_sim_factory, raw_factory):
    tenants = [TenantSpec("acct001", calls_per_day=50), TenantSpec("acct002", "America/New_York", calls_per_day=50)]
    sim = ccfs_sim_factory(tenants=tenants, base_date=BASE)
    raw = raw_factory(sim)
    ny = next(c for c in sim.calls("acct002", BASE + timedelta(days=1)) if len(c.recordings) == 1)
    zone = ZoneInfo("America/New_York")
    assert datetime.fromtimestamp(int(ny.call_id.split("-")[0]), zone).replace(tzinfo=None) == ny.begin
    rec = ny.recordings[0]
    utc_begin = rec.call_begin.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    local = {"callId": ny.call_id, "beginTime": format_time(rec.call_begin), "endTime": format_time(rec.call_begin)}
    utc = {"callId": ny.call_id, "beginTime": format_time(utc_begin), "endTime": format_time(utc_begin)}
    assert raw.json("getRecordFileUrlFromObs", {**local, "version": "2.0"})["resultCode"] == "0"
    assert raw.json("getRecordFileUrlFromObs", utc)["resultCode"] == "0"
    assert raw.json("getRecordFileUrlFromObs", local)["resultCode"] == "0300012"
    ids = [c.call_id for a in ("acct001", "acct002") for c in sim.calls(a, BASE)]
    assert len(ids) == len(set(ids))
    rows = sim.truth("acct002", ny.begin, ny.begin).index_rows
    assert rows == ny.index_rows and rows[0]["vdn_id"] != sim.calls("acct001", BASE)[0].legs[0]["vdn_id"]


def test_sixteen_parallel_downloads(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(min_recording_bytes=100_000, max_recording_bytes=400_000)
    raw = raw_factory(sim)
    day = sim.base_date + timedelta(days=1)
    truth = sim.truth("acct001", datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time()))
    recordings = truth.recordings[:32]
    calls = {c.call_id: c for c in sim.calls("acct001", day)}

    def fetch(index):
        rec = recordings[index]
        if index % 2:
            response = raw.post("downloadRecordFile", wrapped({"fileName": rec.file_name}))
        else:
            body = {"callId": rec.call_id, "beginTime": rec.call_begin, "endTime": rec.call_begin, "version": "2.0"}
            url = raw.json("getRecordFileUrlFromObs", body)["resultData"]["url"]
            response = raw.get(url)
        return hashlib.sha256(response.content).hexdigest(), len(response.content)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fetch, range(len(recordings))))
    assert results == [(r.sha256, r.size) for r in recordings]
    counters = sim.counters()
    assert counters["bytes_served"] == sum(r.size for r in recordings)
    assert counters["requests_by_op.downloadRecordFile"] == 16 and counters["obs_downloads"] == 16
    assert all(calls[r.call_id].recordings for r in recordings)
