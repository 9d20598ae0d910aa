"""The simulator's wire protocol, driven by raw httpx requests signed by the test's own signer."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from ccfs.models import format_time
from tests.integration.conftest import assert_alaw_wav, indep_sign, utc_stamp, wrapped

ZIP_TYPE = "Application/Octet-stream;charset=UTF-8"


def _day(sim):
    return sim.base_date + timedelta(days=1)


def _recorded(sim, count: int = 1):
    """A call of day 2 with exactly ``count`` recordings."""
    return next(c for c in sim.calls("acct001", _day(sim)) if len(c.recordings) == count)


def _query_body(sim, **changes):
    day = _day(sim)
    body = {
        "beginTime": f"{day} 08:00:00",
        "endTime": f"{day} 12:00:00",
        "accountId": "acct001",
        "dataType": "call_record",
        "callBackURL": "http://127.0.0.1:9/cb",
    }
    body.update(changes)
    return wrapped({k: v for k, v in body.items() if v is not ...})


def _url_body(call, recording=None, version="2.0", **changes):
    rec = recording or call.recordings[0]
    body = {
        "callId": call.call_id,
        "beginTime": format_time(rec.call_begin - timedelta(minutes=5)),
        "endTime": format_time(rec.call_end + timedelta(minutes=5)),
    }
    if version is not None:
        body["version"] = version
    body.update(changes)
    return body


# ---------------------------------------------------------------- the test's own signer


def test_independent_signer_reproduces_the_vendor_vectors():
    body_a = '{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}'
    headers_a = {"Host": "10.0.0.1:28443", "Content-Type": "application/json;charset=UTF-8", "Content-Length": "104"}
    assert indep_sign(
        "testak", "testsk", "POST", "/CCFS/resource/ccfs/downloadBillFile", headers_a, body_a, "2018-07-02T02:43:08Z"
    ) == (
        "auth-v2/testak/2018-07-02T02:43:08Z/content-length;content-type;host/"
        "5be465b8b9367be46508c1829792af8f64e2f28ae7affca15ff22792a39b9c10"
    )
    assert indep_sign(
        "testak",
        "testsk",
        "GET",
        "/rest/x",
        {"host": "10.0.0.1:28443"},
        b"",
        "2018-07-02T02:43:08Z",
        [("a", "x/y"), ("b", "2 3")],
    ) == ("auth-v2/testak/2018-07-02T02:43:08Z/host/b49ae64f1d13d67d56b3dd1d638105ee2597420e3e3d35e99e057ce26e8c138c")


# ---------------------------------------------------------------- queryBillData


def test_query_bill_data_answers_a_fresh_response_id_with_the_legacy_object(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    first = raw.json("queryBillData", _query_body(ccfs_sim))
    second = raw.json("queryBillData", _query_body(ccfs_sim, accountId=""))
    assert first["resultCode"] == "0" and first["resultDesc"] == "success"
    assert re.fullmatch(r"[0-9a-f]{32}", first["resultData"]["responseId"])
    assert first["resultData"]["responseId"] != second["resultData"]["responseId"]
    assert first["response"] == {"version": "2.0", "resultCode": "0", "resultMsg": "success"}
    assert ccfs_sim.counters()["requests_by_op.queryBillData"] == 2


QUERY_ERRORS = [
    ("missing beginTime", {"beginTime": ...}, "0300001"),
    ("null endTime", {"endTime": None}, "0300001"),
    ("empty callBackURL", {"callBackURL": ""}, "0300002"),
    ("accountId too long", {"accountId": "a" * 21}, "0300003"),
    ("callId too long", {"callId": "1" * 26}, "0300003"),
    ("bad time format", {"beginTime": "2024/01/01 00:00:00"}, "0300004"),
    ("impossible date", {"beginTime": "2024-02-30 00:00:00"}, "0300004"),
    ("window over 3 days", {"beginTime": "2024-01-01 00:00:00", "endTime": "2024-01-04 00:00:01"}, "0300004"),
    ("end before begin", {"beginTime": "2024-01-02 00:00:00", "endTime": "2024-01-01 00:00:00"}, "0300004"),
    ("unknown dataType", {"dataType": "calls"}, "0300004"),
    ("callback not http", {"callBackURL": "ftp://x/cb"}, "0300004"),
]


@pytest.mark.parametrize(("case", "changes", "code"), QUERY_ERRORS, ids=[c[0] for c in QUERY_ERRORS])
def test_query_bill_data_validation_codes(ccfs_sim, raw_factory, case, changes, code):
    reply = raw_factory(ccfs_sim).json("queryBillData", _query_body(ccfs_sim, **changes))
    assert (reply["resultCode"], reply["resultData"]) == (code, "")
    assert ccfs_sim.counters()[f"results.{code}"] == 1
    assert ccfs_sim.queries() == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "0300007"),
        (b"   ", "0300007"),
        (b"not json", "0300004"),
        (b"[1, 2]", "0300004"),
        (b'{"request":{"version":"1.0"},"msgBody":{}}', "0300006"),
        (b"\xff\xfe{}", "0300004"),
    ],
)
def test_body_level_errors(ccfs_sim, raw_factory, raw, code):
    reply = raw_factory(ccfs_sim).json("queryBillData", raw=raw)
    assert (reply["resultCode"], reply["resultData"]) == (code, "")


# ---------------------------------------------------------------- authentication


def test_signing_only_host_is_accepted(ccfs_sim, raw_factory):
    reply = raw_factory(ccfs_sim).json("queryBillData", _query_body(ccfs_sim), signed=("host",))
    assert reply["resultCode"] == "0"


@pytest.mark.parametrize(
    ("case", "kwargs", "reason"),
    [
        ("no Authorization", {"sign": False}, "malformed"),
        ("garbage", {"authorization": "Bearer abc"}, "malformed"),
        ("wrong sk", {"sk": "not-the-sk"}, "signature_mismatch"),
        ("unknown ak", {"ak": "someone-else"}, "unknown_ak"),
        ("stale timestamp", {"timestamp": utc_stamp(-2 * 3600)}, "stale_timestamp"),
        ("future timestamp", {"timestamp": utc_stamp(+2 * 3600)}, "future_timestamp"),
        ("host not signed", {"signed": ("content-type",)}, "host_not_signed"),
    ],
)
def test_bad_signatures_get_http_401(ccfs_sim, raw_factory, case, kwargs, reason):
    response = raw_factory(ccfs_sim).post("queryBillData", _query_body(ccfs_sim), **kwargs)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    counters = ccfs_sim.counters()
    assert counters["http_401"] == 1 and counters[f"http_401_{reason}"] == 1
    assert ccfs_sim.queries() == []


def test_a_body_changed_after_signing_is_rejected(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    request = raw.request("queryBillData", _query_body(ccfs_sim))
    tampered = request.content.replace(b"acct001", b"acct002")
    forged = raw.http.build_request("POST", str(request.url), content=tampered, headers=request.headers)
    assert raw.http.send(forged).status_code == 401


def test_unknown_operation_and_wrong_method(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    assert raw.post("deleteEverything", {}).status_code == 404
    assert raw.get(ccfs_sim.base_url + "/CCFS/resource/ccfs/queryBillData").status_code == 405
    assert raw.get(ccfs_sim.base_url + "/nothing/here").status_code == 404


# ---------------------------------------------------------------- downloadBillFile errors


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("20181345_9239cb50a8384bb0ab503441bf089446.zip", "0300010"),
        ("bill.zip", "0300004"),
        ("", "0300002"),
        ("20180702_" + "a" * 37 + ".zip", "0300003"),
        ("20180702_9239cb50a8384bb0ab503441bf089446.zip", "0300012"),
    ],
)
def test_download_bill_file_errors(ccfs_sim, raw_factory, name, code):
    response = raw_factory(ccfs_sim).post("downloadBillFile", wrapped({"billFileName": name}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert (response.json()["resultCode"], response.json()["resultData"]) == (code, "")


def test_a_bill_of_another_ak_is_not_found(ccfs_sim_factory, raw_factory, receiver_factory):
    sim = ccfs_sim_factory(extra_keys={"other-ak": "other-sk"})
    receiver = receiver_factory(sim)
    raw = raw_factory(sim)
    rid = raw.json("queryBillData", _query_body(sim, callBackURL=receiver.url))["resultData"]["responseId"]
    assert receiver.wait(1)
    name = receiver.received[0].json["msgBody"]["billFileName"]
    assert name.endswith(f"_{rid}.zip")
    other = raw.post("downloadBillFile", wrapped({"billFileName": name}), ak="other-ak", sk="other-sk")
    assert other.json()["resultCode"] == "0300012"
    mine = raw.post("downloadBillFile", wrapped({"billFileName": name}))
    assert mine.headers["content-type"] == ZIP_TYPE and mine.content[:2] == b"PK"


# ---------------------------------------------------------------- getRecordFileUrlFromObs + OBS


def _truth_of(sim, recording):
    truth = sim.truth(recording.account_id, recording.call_begin - timedelta(days=1), recording.call_begin)
    return next(r for r in truth.recordings if r.file_name == recording.file_name)


def test_one_recording_gives_one_presigned_url_serving_the_exact_wav(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 1)
    reply = raw.json("getRecordFileUrlFromObs", _url_body(call))
    url = reply["resultData"]["url"]
    assert isinstance(url, str)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname == ccfs_sim.obs_host == "127.0.0.1"
    # like the vendor's example, the path ends in a UUID, not the file name; the same one every time
    assert re.fullmatch(r"/obs/aicc-recordings/acct001/\d{8}/ccfs/record/[0-9a-f-]{36}", parts.path), parts.path
    assert call.recordings[0].file_name.rsplit("/", 1)[-1].removesuffix(".wav") not in parts.path
    again = urlsplit(raw.json("getRecordFileUrlFromObs", _url_body(call))["resultData"]["url"]).path
    assert again == parts.path
    assert set(parse_qs(parts.query)) == {"AccessKeyId", "Expires", "Signature"}
    response = raw.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    truth = _truth_of(ccfs_sim, call.recordings[0])
    assert int(response.headers["content-length"]) == truth.size == len(response.content)
    assert hashlib.sha256(response.content).hexdigest() == truth.sha256
    assert_alaw_wav(response.content)
    counters = ccfs_sim.counters()
    assert counters["urls_issued"] == 2 and counters["obs_downloads"] == 1
    assert counters["bytes_served"] == truth.size


def test_several_recordings_come_back_as_an_array_in_time_order(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 2)
    first, second = call.recordings
    body = _url_body(call, first, endTime=format_time(second.call_end))
    urls = raw.json("getRecordFileUrlFromObs", body)["resultData"]["url"]
    assert isinstance(urls, list) and len(urls) == 2
    served = [hashlib.sha256(raw.get(u).content).hexdigest() for u in urls]
    assert served == [_truth_of(ccfs_sim, r).sha256 for r in (first, second)]  # in time order
    assert first.call_begin < second.call_begin
    # a window around the second recording only gives the second
    only = raw.json("getRecordFileUrlFromObs", _url_body(call, second, beginTime=format_time(second.call_begin)))
    assert urlsplit(only["resultData"]["url"]).path == urlsplit(urls[1]).path


def test_name_naming_keeps_the_file_name_in_the_url(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(url_naming="name")
    call = _recorded(sim, 2)
    body = _url_body(call, call.recordings[0], endTime=format_time(call.recordings[1].call_end))
    urls = raw_factory(sim).json("getRecordFileUrlFromObs", body)["resultData"]["url"]
    assert [urlsplit(u).path.endswith(r.file_name) for u, r in zip(urls, call.recordings, strict=True)] == [True] * 2


@pytest.mark.parametrize(("style", "separator"), [("semicolon", ";"), ("space", " "), ("newline", "\n")])
@pytest.mark.parametrize("placement", ["resultData", "top"])
def test_url_list_styles_and_placement(ccfs_sim_factory, raw_factory, style, separator, placement):
    sim = ccfs_sim_factory(url_list_style=style, url_placement=placement)
    raw = raw_factory(sim)
    call = _recorded(sim, 2)
    body = _url_body(call, call.recordings[0], endTime=format_time(call.recordings[1].call_end))
    reply = raw.json("getRecordFileUrlFromObs", body)
    value = reply["url"] if placement == "top" else reply["resultData"]["url"]
    assert reply["resultCode"] == "0" and (placement == "resultData" or reply["resultData"] == {})
    assert isinstance(value, str) and value.count(separator + "https://") == 1
    served = [hashlib.sha256(raw.get(u).content).hexdigest() for u in value.split(separator)]
    assert served == [_truth_of(sim, r).sha256 for r in call.recordings]


def test_comma_style_url_list(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(url_list_style="comma")
    call = _recorded(sim, 2)
    body = _url_body(call, call.recordings[0], endTime=format_time(call.recordings[1].call_end))
    value = raw_factory(sim).json("getRecordFileUrlFromObs", body)["resultData"]["url"]
    assert isinstance(value, str) and value.count(",https://") == 1


def test_times_are_tenant_local_with_version_and_utc_without(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 1)
    rec = call.recordings[0]
    local = {"beginTime": format_time(rec.call_begin), "endTime": format_time(rec.call_begin + timedelta(minutes=1))}
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, **local))["resultCode"] == "0"
    # the same strings read as UTC are 8 hours later in Asia/Shanghai: nothing there
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, version=None, **local))["resultCode"] == "0300012"
    as_utc = {k: format_time(datetime.strptime(v, "%Y-%m-%d %H:%M:%S") - timedelta(hours=8)) for k, v in local.items()}
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, version=None, **as_utc))["resultCode"] == "0"
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, version="", **as_utc))["resultCode"] == "0"


def test_the_url_window_is_inclusive_on_call_begin(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 1)
    at = format_time(call.recordings[0].call_begin)
    after = format_time(call.recordings[0].call_begin + timedelta(seconds=1))
    before = format_time(call.recordings[0].call_begin - timedelta(seconds=1))
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, beginTime=at, endTime=at))["resultCode"] == "0"
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, beginTime=after))["resultCode"] == "0300012"
    assert raw.json("getRecordFileUrlFromObs", _url_body(call, endTime=before))["resultCode"] == "0300012"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"callId": "1637742300-27"}, "0300012"),
        ({"callId": "not-a-call-id"}, "0300012"),
        ({"callId": "1" * 26}, "0300003"),
        ({"callId": ""}, "0300002"),
        ({"version": "1.0"}, "0300006"),
        ({"beginTime": "yesterday"}, "0300004"),
    ],
)
def test_get_record_file_url_errors(ccfs_sim, raw_factory, changes, code):
    body = _url_body(_recorded(ccfs_sim, 1), **changes)
    assert raw_factory(ccfs_sim).json("getRecordFileUrlFromObs", body)["resultCode"] == code


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode({k: v for k, v in query.items() if v is not None})))


def test_obs_refuses_tampered_urls_with_403_xml(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 1)
    url = raw.json("getRecordFileUrlFromObs", _url_body(call))["resultData"]["url"]
    expires = parse_qs(urlsplit(url).query)["Expires"][0]
    other = next(c for c in ccfs_sim.calls("acct001", _day(ccfs_sim)) if c.recordings and c is not call)
    other_url = raw.json("getRecordFileUrlFromObs", _url_body(other, other.recordings[0]))["resultData"]["url"]
    other_url = other_url if isinstance(other_url, str) else other_url[0]
    cases = [
        _with_query(url, Signature="0" * 64),
        _with_query(url, Expires=str(int(expires) + 3600)),
        urlunsplit(urlsplit(url)._replace(path=urlsplit(other_url).path)),  # another object, this signature
        _with_query(url, Signature=None),
    ]
    for bad in cases:
        response = raw.get(bad)
        assert response.status_code == 403, bad
        assert response.headers["content-type"] == "application/xml"
        assert b"<Error><Code>" in response.content
    assert raw.get(url).status_code == 200
    counters = ccfs_sim.counters()
    assert counters["obs_403"] == 4 and counters["obs_403_signature"] == 3


def test_presigned_urls_expire(ccfs_sim_factory, raw_factory):
    now = [datetime.now(UTC).timestamp()]
    sim = ccfs_sim_factory(url_expiry_seconds=1, clock=lambda: now[0])
    raw = raw_factory(sim)
    url = raw.json("getRecordFileUrlFromObs", _url_body(_recorded(sim, 1)))["resultData"]["url"]
    assert int(parse_qs(urlsplit(url).query)["Expires"][0]) == int(now[0]) + 1
    assert raw.get(url).status_code == 200
    now[0] += 1
    assert raw.get(url).status_code == 200  # valid up to and including Expires
    now[0] += 1
    expired = raw.get(url)
    assert expired.status_code == 403 and b"AccessDenied" in expired.content
    assert sim.counters()["obs_403_expired"] == 1


# ---------------------------------------------------------------- downloadRecordFile / downloadRecord


def test_download_record_file_serves_the_index_file(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    rec = _recorded(ccfs_sim, 1).recordings[0]
    response = raw.post("downloadRecordFile", wrapped({"fileName": rec.file_name}))
    assert response.status_code == 200 and response.headers["content-type"] == ZIP_TYPE
    truth = _truth_of(ccfs_sim, rec)
    assert hashlib.sha256(response.content).hexdigest() == truth.sha256
    missing = raw.post("downloadRecordFile", wrapped({"fileName": rec.file_name.replace(".wav", "9.wav")}))
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json()["resultCode"] == "0300012"
    assert raw.json("downloadRecordFile", wrapped({"fileName": ""}))["resultCode"] == "0300002"


def test_download_record_by_original_name_or_call_id(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    single = _recorded(ccfs_sim, 1)
    truth = _truth_of(ccfs_sim, single.recordings[0])
    for name in (single.recordings[0].original_file_name.replace("\\", "/"), single.call_id):
        response = raw.post("downloadRecord", wrapped({"fileName": name}))
        assert response.headers["content-type"] == ZIP_TYPE
        assert hashlib.sha256(response.content).hexdigest() == truth.sha256, name
    with_cc = raw.post("downloadRecord", wrapped({"fileName": single.call_id, "ccId": "1"}))
    assert hashlib.sha256(with_cc.content).hexdigest() == truth.sha256
    wrong_cc = raw.json("downloadRecord", wrapped({"fileName": single.call_id, "ccId": "9"}))
    assert wrong_cc["resultCode"] == "0300012"
    assert raw.json("downloadRecord", wrapped({"fileName": "X:/1/0/20200101/1/1.V3"}))["resultCode"] == "0300012"


def test_download_record_of_a_call_with_two_recordings_is_a_zip(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 2)
    response = raw.post("downloadRecord", wrapped({"fileName": call.call_id}))
    assert response.headers["content-type"] == ZIP_TYPE and response.headers["transfer-encoding"] == "chunked"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        members = archive.namelist()
        hashes = [hashlib.sha256(archive.read(m)).hexdigest() for m in members]
    assert members == [r.file_name.rsplit("/", 1)[-1] for r in call.recordings]
    assert hashes == [_truth_of(ccfs_sim, r).sha256 for r in call.recordings]


# ---------------------------------------------------------------- admin


def test_admin_truth_counters_faults_and_reset(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    day = _day(ccfs_sim)
    begin, end = f"{day} 09:00:00", f"{day} 10:00:00"
    truth = raw.get(f"{ccfs_sim.admin_url}/truth", params={"account": "acct001", "begin": begin, "end": end}).json()
    expected = ccfs_sim.truth("acct001", datetime.fromisoformat(begin), datetime.fromisoformat(end)).to_json()
    assert truth == expected and truth["cdr_rows"]
    everyone = raw.get(f"{ccfs_sim.admin_url}/truth", params={"begin": begin, "end": end}).json()
    assert everyone == expected  # one tenant
    assert raw.get(f"{ccfs_sim.admin_url}/truth", params={"begin": "x", "end": end}).status_code == 400

    changed = raw.http.post(f"{ccfs_sim.admin_url}/faults", json={"error_rate": 1, "not_found_calls": ["1-1"]})
    assert changed.json()["error_rate"] == 1 and changed.json()["not_found_calls"] == ["1-1"]
    assert raw.post("queryBillData", _query_body(ccfs_sim)).status_code in (500, 503)
    assert raw.http.post(f"{ccfs_sim.admin_url}/faults", json={"no_such_knob": 1}).status_code == 400
    assert raw.http.post(f"{ccfs_sim.admin_url}/faults", json={"error_rate": 2}).status_code == 400
    counters = raw.get(f"{ccfs_sim.admin_url}/counters").json()
    assert counters["errors_injected"] == 1

    assert raw.http.post(f"{ccfs_sim.admin_url}/reset").json() == {"reset": True}
    assert raw.get(f"{ccfs_sim.admin_url}/faults").json()["error_rate"] == 0
    assert raw.json("queryBillData", _query_body(ccfs_sim))["resultCode"] == "0"
    counters = raw.get(f"{ccfs_sim.admin_url}/counters").json()
    assert "errors_injected" not in counters and counters["requests_by_op.queryBillData"] == 1
    queries = raw.get(f"{ccfs_sim.admin_url}/queries").json()
    assert [q["responseId"] for q in queries] == [q["responseId"] for q in ccfs_sim.queries()]
    calls = raw.get(f"{ccfs_sim.admin_url}/calls", params={"account": "acct001", "day": str(day)}).json()
    assert [c["call_id"] for c in calls] == [c.call_id for c in ccfs_sim.calls("acct001", day)]
    info = raw.get(f"{ccfs_sim.admin_url}/info").json()
    assert info["base_url"] == ccfs_sim.base_url and "sk" not in info
    assert json.dumps(info).find(ccfs_sim.sk) == -1


def test_plain_http_mode(ccfs_sim_factory, raw_factory):
    sim = ccfs_sim_factory(tls=False)
    assert sim.base_url.startswith("http://") and sim.ca_bundle is None
    raw = raw_factory(sim)
    assert raw.json("queryBillData", _query_body(sim))["resultCode"] == "0"
    with pytest.raises(httpx.HTTPError):
        httpx.get(sim.base_url.replace("http://", "https://") + "/_admin/counters", verify=False, timeout=5)


def test_unknown_code_rate_answers_an_undocumented_code(ccfs_sim, raw_factory):
    raw = raw_factory(ccfs_sim)
    call = _recorded(ccfs_sim, 1)
    ccfs_sim.set_faults(unknown_code_rate=1)
    for op, body in (("getRecordFileUrlFromObs", _url_body(call)), ("queryBillData", _query_body(ccfs_sim))):
        reply = raw.json(op, body)
        assert reply["resultCode"] == "0309999" and reply["resultData"] == ""
    assert ccfs_sim.counters()["unknown_codes_injected"] == 2
    ccfs_sim.set_faults(unknown_code_rate=0)
    assert raw.json("getRecordFileUrlFromObs", _url_body(call))["resultCode"] == "0"


@pytest.mark.parametrize(
    ("style", "pattern"),
    [
        ("hex32", r"[0-9a-f]{32}"),
        ("uuid", r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"),
        ("short", r"[a-z0-9]{6,16}"),
        ("mixed", r"[A-Za-z0-9][A-Za-z0-9_.-]{9,35}"),
    ],
)
def test_response_id_styles(ccfs_sim_factory, raw_factory, style, pattern):
    from ccfs.models import QueryBillDataResult

    sim = ccfs_sim_factory(response_id_style=style)
    raw = raw_factory(sim)
    ids = [raw.json("queryBillData", _query_body(sim))["resultData"]["responseId"] for _ in range(8)]
    assert len(set(ids)) == 8
    for rid in ids:
        assert re.fullmatch(pattern, rid), rid
        assert QueryBillDataResult.model_validate({"responseId": rid}).responseId == rid
    names = {q["responseId"]: q["billFileName"] for q in sim.queries()}
    assert all(re.fullmatch(r"\d{8}_" + re.escape(rid.replace("-", "")) + r"\.zip", names[rid]) for rid in ids)
