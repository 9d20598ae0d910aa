"""S3 key layout (docs/design.md "S3 layout") and the recording URL rules."""

from __future__ import annotations

from datetime import date

import pytest

from exporter import layout
from exporter.recordings import PermanentRecordingError, check_recording_url, host_allowed, pick_url

RID = "9239cb50a8384bb0ab503441bf089446"


def test_keys_follow_the_documented_layout():
    day = date(2018, 7, 2)
    assert layout.raw_key("acct001", f"20180702_{RID}.zip") == (
        f"raw/account_id=acct001/bill_date=2018-07-02/20180702_{RID}.zip"
    )
    assert layout.raw_key("_all", f"20180702_{RID}.zip").startswith("raw/account_id=_all/")
    assert layout.cdr_key("acct001", day, RID, 2) == f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-2.csv"
    assert layout.index_key("", day, RID, 1) == f"recording_index/account_id=_all/call_date=2018-07-02/{RID}-1.csv"
    assert layout.recording_key("acct001", day, "1637742300-27", "0903379") == (
        "recordings/account_id=acct001/call_date=2018-07-02/1637742300-27/0903379.wav"
    )
    assert layout.sidecar_key("acct001", day, "1637742300-27", "0903379").endswith("/1637742300-27/0903379.json")
    assert layout.manifest_key(RID) == f"manifests/{RID}.json"
    first, second = layout.staging_key(), layout.staging_key()
    assert first.startswith("_staging/") and first != second


def test_partition_values_come_from_the_row():
    assert layout.account_partition(None) == "_all"
    assert layout.account_partition("  ") == "_all"
    assert layout.account_partition(" acct001 ") == "acct001"
    assert layout.call_date("2018-07-02 23:59:59") == date(2018, 7, 2)
    for bad in ("", "2018-07-02", "2018-7-2 01:02:03", None):
        with pytest.raises(ValueError, match="yyyy-MM-dd HH:mm:ss"):
            layout.call_date(bad)
    with pytest.raises(ValueError, match="day is out of range"):
        layout.call_date("2018-02-30 00:00:00")


@pytest.mark.parametrize("value", ["a/b", "..", ".", "a=b", "x y", "a\\b", "ä" * 3, "-" + "x" * 200])
def test_unsafe_values_never_become_key_segments(value):
    with pytest.raises(layout.UnsafeKeyPart):
        layout.account_partition(value)
    with pytest.raises(layout.UnsafeKeyPart):
        layout.recording_key("acct", date(2018, 7, 2), value, "stem")


@pytest.mark.parametrize("value", ["1637742300-27\n", "acct001\n", "x\n\n"])
def test_a_trailing_newline_never_reaches_a_key(value):
    # "$" matches before a final newline: the key pattern must end at the end of the string.
    with pytest.raises(layout.UnsafeKeyPart):
        layout.recording_key("acct", date(2018, 7, 2), value, "stem")
    with pytest.raises(layout.UnsafeKeyPart):
        layout.recording_key("acct", date(2018, 7, 2), "1637742300-27", value)


def test_entry_number_and_recording_stem():
    assert layout.entry_number("20180702101010123456_call_1.csv") == 1
    assert layout.entry_number("20180702101010123456_record_12.csv") == 12
    assert layout.entry_number("20180702101010123456_call.csv") == 0  # downloadBillFile page's form
    assert layout.entry_number("20180702101010123456_record.CSV") == 0
    assert layout.entry_number("20180702101010123456_call_3.Csv") == 3
    with pytest.raises(layout.UnsafeKeyPart):
        layout.entry_number("readme.txt")
    assert layout.recording_stem("/10/1/record/100/13533/0903379.wav") == "0903379"
    assert layout.recording_stem("X:\\17\\0\\20180903\\15470\\2043295.V3") == "2043295"
    assert layout.recording_stem("a.b.wav") == "a.b"
    with pytest.raises(layout.UnsafeKeyPart):
        layout.recording_stem("/10/1/record/")


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("bucket.obs.cn-north-4.myhuaweicloud.com", [".myhuaweicloud.com"], True),
        ("bucket.obs.cn-north-4.myhuaweicloud.com", ["myhuaweicloud.com"], True),
        ("myhuaweicloud.com", ["myhuaweicloud.com"], True),
        ("evilmyhuaweicloud.com", ["myhuaweicloud.com"], False),
        ("evilmyhuaweicloud.com", [".myhuaweicloud.com"], False),
        ("myhuaweicloud.com.evil.net", [".myhuaweicloud.com"], False),
        ("127.0.0.1", ["127.0.0.1"], True),
        ("evil.127.0.0.1", ["127.0.0.1"], False),
        ("127.0.0.2", ["127.0.0.1"], False),
        ("anything.example", [], False),
        ("anything.example", ["", " "], False),
        ("OBS.MyHuaweiCloud.com.", [".myhuaweicloud.com"], True),
    ],
)
def test_host_allow_list(host, allowed, ok):
    assert host_allowed(host, allowed) is ok


@pytest.mark.parametrize(
    ("host", "port", "allowed", "ok"),
    [
        ("b.obs.cn-north-4.myhuaweicloud.com", None, [".myhuaweicloud.com"], True),
        ("b.obs.cn-north-4.myhuaweicloud.com", 443, [".myhuaweicloud.com"], True),  # 443 is the default
        ("b.obs.cn-north-4.myhuaweicloud.com", 8443, [".myhuaweicloud.com"], False),  # no entry names 8443
        ("10.0.0.9", 9443, ["10.0.0.9"], False),
        ("10.0.0.9", 9443, ["10.0.0.9:9443"], True),  # on-premises LSS on its own port
        ("10.0.0.9", None, ["10.0.0.9:9443"], False),  # that entry allows only 9443
        ("lss.corp.example", 9443, ["lss.corp.example:9443"], True),
        ("x.lss.corp.example", 9443, [".lss.corp.example:9443"], True),
        ("lss.corp.example", 9444, ["lss.corp.example:9443"], False),
        ("::1", 8443, ["[::1]:8443"], True),
        ("::1", 8443, ["::1"], False),
    ],
)
def test_host_allow_list_ports(host, port, allowed, ok):
    assert host_allowed(host, allowed, port) is ok


def test_url_checks():
    allowed = ["127.0.0.1", ".myhuaweicloud.com"]
    assert check_recording_url("https://b.obs.myhuaweicloud.com/r/1.wav?Signature=x", allowed).host == (
        "b.obs.myhuaweicloud.com"
    )
    with pytest.raises(PermanentRecordingError, match="https"):
        check_recording_url("http://b.obs.myhuaweicloud.com/r/1.wav", allowed)
    with pytest.raises(PermanentRecordingError, match="host not allowed"):
        check_recording_url("https://evil.example/r/1.wav", allowed)
    with pytest.raises(PermanentRecordingError, match="host not allowed"):
        check_recording_url("https://b.obs.myhuaweicloud.com@evil.example/r/1.wav", allowed)
    with pytest.raises(PermanentRecordingError):
        check_recording_url("https://[::1/r", allowed)
    with pytest.raises(PermanentRecordingError, match=r"host not allowed: b\.obs\.myhuaweicloud\.com:8443"):
        check_recording_url("https://b.obs.myhuaweicloud.com:8443/r/1.wav", allowed)  # another port: refused


def test_pick_url():
    urls = ["https://h/x/0903380.wav?Expires=1", "https://h/x/0903379.wav?Expires=1"]
    assert pick_url(urls, "/10/1/record/0903379.wav", 1, 2) == urls[1]  # by stem, whatever the order
    anonymous = ["https://h/a?sig=1", "https://h/b?sig=2"]
    assert pick_url(anonymous, "/r/0903379.wav", 2, 2) == anonymous[1]  # by ordinal when len == count
    assert pick_url(anonymous[:1], "/r/0903379.wav", 2, 2) is None  # one URL for two recordings: whose?
    assert pick_url(anonymous, "/r/0903379.wav", 1, 3) is None  # ambiguous: fall back
