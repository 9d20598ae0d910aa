"""ccfs.models: the reference's examples verbatim, strict times and windows, file names, result codes."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from pydantic import BaseModel, Field, ValidationError

from ccfs.models import (
    PROTOCOL_VERSION,
    BillCallback,
    BillCallbackBody,
    CallbackAck,
    CcfsReply,
    DownloadBillFileBody,
    DownloadBillFileRequest,
    DownloadRecordFileRequest,
    DownloadRecordRequest,
    GetRecordFileUrlRequest,
    QueryBillDataBody,
    QueryBillDataRequest,
    QueryBillDataResult,
    RecordFileUrlResult,
    bill_file_date,
    format_time,
    parse_time,
    result_code_for,
    split_url_list,
)

RESPONSE_ID = "9239cb50a8384bb0ab503441bf089446"
BILL_FILE = "20180702_9239cb50a8384bb0ab503441bf089446.zip"
DASHED_ID = "9239cb50-a838-4bb0-ab50-3441bf089446"


def code_of(model: type[BaseModel], data: object) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return result_code_for(caught.value)


def query_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "beginTime": "2026-01-01 00:00:00",
        "endTime": "2026-01-01 01:00:00",
        "dataType": "call",
        "callBackURL": "https://api.example.com/v1/ccfs/callback",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


# ------------------------------------------------------------------ times


def test_parse_and_format_time() -> None:
    assert parse_time("2021-11-24 06:25:03") == datetime(2021, 11, 24, 6, 25, 3)
    assert format_time(datetime(2021, 1, 2, 3, 4, 5)) == "2021-01-02 03:04:05"


@pytest.mark.parametrize(
    "value",
    [
        "2026-1-1 0:0:0",
        "2026-01-01 0:00:00",
        "2026-02-30 00:00:00",
        "2026-13-01 00:00:00",
        "2026-01-01 24:00:00",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01 00:00:00.000",
        "2026-01-01 00:00:00\n",
        " 2026-01-01 00:00:00",
        "2026/01/01 00:00:00",
        "٢٠٢٦-01-01 00:00:00",  # non-ASCII digits
        "",
    ],
)
def test_time_strictness(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (format or calendar: both are ValueError)
        parse_time(value)
    assert code_of(QueryBillDataBody, query_body(beginTime=value)) == "0300004"
    assert code_of(GetRecordFileUrlRequest, {"callId": "1", "beginTime": "2026-01-01 00:00:00", "endTime": value}) == (
        "0300004"
    )


def test_times_must_be_strings_or_naive_datetimes() -> None:
    body = QueryBillDataBody.model_validate(
        query_body(beginTime=datetime(2026, 1, 1), endTime=datetime(2026, 1, 2, 0, 0, 1))
    )
    assert body.beginTime == datetime(2026, 1, 1)
    assert code_of(QueryBillDataBody, query_body(beginTime=1767225600)) == "0300004"
    aware = datetime.fromisoformat("2026-01-01T00:00:00+08:00")
    assert code_of(QueryBillDataBody, query_body(beginTime=aware)) == "0300004"


# ------------------------------------------------------------------ queryBillData


def test_query_bill_data_with_optional_fields_as_empty_strings() -> None:
    """The vendor's own example sends optional fields as "" (§3)."""
    raw = {
        "request": {"version": "2.0"},
        "msgBody": {
            "beginTime": "2018-07-01 00:00:00",
            "endTime": "2018-07-02 00:00:00",
            "accountId": "",
            "agentId": "",
            "callId": "",
            "callerNo": "",
            "calleeNo": "",
            "calleeNo2": "",
            "dataType": "call_record",
            "callBackURL": "https://10.0.0.2:8443/callback",
        },
    }
    request = QueryBillDataRequest.model_validate(raw)
    body = request.msgBody
    assert request.request.version == "2.0"
    assert (body.accountId, body.agentId, body.callId, body.callerNo, body.calleeNo, body.calleeNo2) == (None,) * 6
    assert body.beginTime == datetime(2018, 7, 1)
    assert body.endTime == datetime(2018, 7, 2)
    assert body.dataType == "call_record"


def test_query_bill_data_with_optional_fields_present_or_absent() -> None:
    body = QueryBillDataBody.model_validate(
        query_body(accountId="a" * 20, agentId="1001", callId="1637742300-27", callerNo="1" * 25)
    )
    assert (body.accountId, body.agentId, body.callId, body.callerNo) == ("a" * 20, "1001", "1637742300-27", "1" * 25)
    assert QueryBillDataBody.model_validate(query_body()).accountId is None


def test_query_bill_data_serialises_times_in_the_wire_format() -> None:
    request = QueryBillDataRequest(msgBody=QueryBillDataBody.model_validate(query_body(accountId="acct1")))
    wire = json.loads(request.model_dump_json(exclude_none=True))
    assert wire == {
        "request": {"version": "2.0"},
        "msgBody": {
            "beginTime": "2026-01-01 00:00:00",
            "endTime": "2026-01-01 01:00:00",
            "accountId": "acct1",
            "dataType": "call",
            "callBackURL": "https://api.example.com/v1/ccfs/callback",
        },
    }


@pytest.mark.parametrize("data_type", ["call", "record", "call_record"])
def test_data_types(data_type: str) -> None:
    assert QueryBillDataBody.model_validate(query_body(dataType=data_type)).dataType == data_type


@pytest.mark.parametrize("data_type", ["CALL", "calls", "record_call", "call,record", ""])
def test_unknown_data_type(data_type: str) -> None:
    assert code_of(QueryBillDataBody, query_body(dataType=data_type)) in ("0300004", "0300002")


@pytest.mark.parametrize(
    ("begin", "end", "ok"),
    [
        ("2026-01-01 00:00:00", "2026-01-04 00:00:00", True),  # exactly 3 days
        ("2026-01-01 00:00:00", "2026-01-04 00:00:01", False),  # 3 days + 1 s
        ("2026-01-01 00:00:00", "2026-01-01 00:00:00", True),  # empty window
        ("2026-01-01 00:00:01", "2026-01-01 00:00:00", False),  # end before begin
        ("2024-02-27 12:00:00", "2024-03-01 12:00:00", True),  # across 29 February
        ("2026-02-27 12:00:01", "2026-03-02 12:00:01", True),  # 3 days across 28 February
        ("2026-02-27 12:00:01", "2026-03-02 12:00:02", False),  # ... + 1 s
    ],
)
def test_three_day_window(begin: str, end: str, ok: bool) -> None:
    for model, data in (
        (QueryBillDataBody, query_body(beginTime=begin, endTime=end)),
        (GetRecordFileUrlRequest, {"callId": "1637742300-27", "beginTime": begin, "endTime": end, "version": "2.0"}),
    ):
        if ok:
            model.model_validate(data)
        else:
            assert code_of(model, data) == "0300004"


def test_callback_url_must_be_http() -> None:
    for url in ("ftp://x/y", "https://x/ y", "", "https://x/y\n"):
        assert code_of(QueryBillDataBody, query_body(callBackURL=url)) in ("0300004", "0300002")


# ------------------------------------------------------------------ downloadBillFile and billFileName


def test_download_bill_file_request() -> None:
    raw = {"request": {"version": "2.0"}, "msgBody": {"billFileName": BILL_FILE}}
    assert DownloadBillFileRequest.model_validate(raw).msgBody.billFileName == BILL_FILE
    assert bill_file_date(BILL_FILE) == date(2018, 7, 2)
    # The wrapper's version defaults to 2.0 when we build a request.
    built = DownloadBillFileRequest(msgBody=DownloadBillFileBody(billFileName=BILL_FILE))
    assert json.loads(built.model_dump_json()) == raw


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("20180702/9239cb50a8384bb0ab503441bf089446.zip", "0300004"),
        ("20180702_9239cb50a8384bb0ab50\\3441bf089446.zip", "0300004"),
        ("20180702_..zip", "0300004"),
        ("../20180702_9239cb50a8384bb0ab503441bf089446.zip", "0300004"),
        ("20180702_9239cb50\x00a8384bb0ab503441bf089446.zip", "0300004"),
        ("20180702_9239cb50a8384bb0ab503441bf089446.zip\n", "0300004"),
        ("20180702_9239cb50-a838-4bb0-ab50-3441bf089446.zip", "0300004"),
        ("20180702_9239cb50a8384bb0ab503441bf089446.ZIP", "0300004"),
        ("2018072_9239cb50a8384bb0ab503441bf089446.zip", "0300004"),
        ("20180702_9239cb50a8384bb0ab503441bf089446.csv", "0300004"),
        ("20180702_" + "a" * 37 + ".zip", "0300003"),  # 50 characters
        ("20180230_9239cb50a8384bb0ab503441bf089446.zip", "0300010"),
        ("20181301_9239cb50a8384bb0ab503441bf089446.zip", "0300010"),
        ("00000000_9239cb50a8384bb0ab503441bf089446.zip", "0300010"),
        ("٢٠١٨٠٧٠٢_9239cb50a8384bb0ab503441bf089446.zip", "0300004"),  # non-ASCII digits
        ("", "0300002"),
    ],
)
def test_bill_file_name_rules(name: str, code: str) -> None:
    assert code_of(DownloadBillFileBody, {"billFileName": name}) == code


def test_bill_file_name_limits() -> None:
    name49 = "20180702_" + "a" * 36 + ".zip"
    assert len(name49) == 49
    assert DownloadBillFileBody(billFileName=name49).billFileName == name49
    assert DownloadBillFileBody(billFileName="20180702_a.zip").billFileName == "20180702_a.zip"


# ------------------------------------------------------------------ callback


def test_vendor_callback_example_verbatim() -> None:
    raw = (
        '{"request":{"version":"2.0"},"msgBody":{"responseId":"9239cb50a8384bb0ab503441bf089446",'
        '"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip","accountId":""}}'
    )
    callback = BillCallback.model_validate_json(raw)
    assert callback.msgBody.responseId == RESPONSE_ID
    assert callback.msgBody.billFileName == BILL_FILE
    assert callback.msgBody.accountId is None
    assert callback.msgBody.bill_date == date(2018, 7, 2)


def test_callback_with_and_without_account_and_unknown_fields() -> None:
    with_account = {"responseId": RESPONSE_ID, "billFileName": BILL_FILE, "accountId": "acct001", "new": 1}
    assert BillCallbackBody.model_validate(with_account).accountId == "acct001"
    assert BillCallbackBody.model_validate({"responseId": RESPONSE_ID, "billFileName": BILL_FILE}).accountId is None
    wrapped = {"request": {"version": "2.0", "x": "y"}, "msgBody": with_account, "extra": True}
    assert BillCallback.model_validate(wrapped).msgBody.responseId == RESPONSE_ID


@pytest.mark.parametrize(
    ("response_id", "bill_file_name"),
    [
        ("k3v9q2", "20180702_k3v9q2.zip"),
        ("Ab-3_x.Y9-zQ", "20180702_Ab3_x.Y9zQ.zip"),
        ("Z" * 36, f"20180702_{'Z' * 36}.zip"),
    ],
)
def test_callback_accepts_other_response_id_shapes_and_bill_name_alias(response_id: str, bill_file_name: str) -> None:
    for field_name in ("billFileName", "billName"):
        body = BillCallbackBody.model_validate({"responseId": response_id, field_name: bill_file_name})
        assert (body.responseId, body.billFileName) == (response_id, bill_file_name)


def test_callback_bill_name_alias_is_checked_like_bill_file_name() -> None:
    data = {"responseId": RESPONSE_ID, "billName": "20180702_0000cb50a8384bb0ab503441bf089446.zip"}
    with pytest.raises(ValidationError, match="does not carry"):
        BillCallbackBody.model_validate(data)
    assert code_of(BillCallbackBody, {"responseId": RESPONSE_ID}) == "0300001"  # neither name: missing


def test_callback_with_dashed_response_id_uses_it_without_dashes_in_the_file_name() -> None:
    body = BillCallbackBody.model_validate({"responseId": DASHED_ID, "billFileName": BILL_FILE})
    assert body.responseId == DASHED_ID
    dashed_name = f"20180702_{DASHED_ID}.zip"
    assert code_of(BillCallbackBody, {"responseId": DASHED_ID, "billFileName": dashed_name}) == "0300004"


@pytest.mark.parametrize(
    "bill_file_name",
    [
        "20180702_0000cb50a8384bb0ab503441bf089446.zip",  # another responseId
        "20180702_9239cb50a8384bb0ab503441bf08944.zip",  # a prefix of it
        "20180702_9239cb50a8384bb0ab503441bf089446a.zip",  # longer
    ],
)
def test_callback_file_name_must_carry_its_response_id(bill_file_name: str) -> None:
    data = {"responseId": RESPONSE_ID, "billFileName": bill_file_name}
    with pytest.raises(ValidationError, match="responseId"):
        BillCallbackBody.model_validate(data)
    assert code_of(BillCallbackBody, data) == "0300004"


@pytest.mark.parametrize(
    "response_id",
    [
        "A" * 37,  # yyyyMMdd_{37}.zip would be 50 characters: over billFileName's 49
        "a/b",  # adds an S3 key level
        "a#b",  # the jobs table's key separator
        "a|b",
        "a=b",
        "a b",
        "-abc",  # must start with a letter or digit
        ".abc",
        "ré",
        RESPONSE_ID + "\n",
        "",
    ],
)
def test_invalid_response_ids(response_id: str) -> None:
    with pytest.raises(ValidationError) as info:
        QueryBillDataResult.model_validate({"responseId": response_id})
    assert "1-36 letters, digits, '-', '_' or '.'" in str(info.value)


@pytest.mark.parametrize(
    "response_id",
    [
        RESPONSE_ID,
        RESPONSE_ID.upper(),
        DASHED_ID,
        "9239cb50a8384bb0ab503441bf08944",  # 31 hex
        "9239cb50a838-4bb0-ab50-3441bf089446",  # dashed differently
        "r",
        "k3v9q2",
        "Ab-3_x.Y9-zQ",
        "Z" * 36,
    ],
)
def test_valid_response_ids(response_id: str) -> None:
    assert QueryBillDataResult.model_validate({"responseId": response_id}).responseId == response_id


def test_callback_ack() -> None:
    assert json.loads(CallbackAck().model_dump_json()) == {"resultCode": "0", "resultDesc": "success"}


# ------------------------------------------------------------------ replies


def test_query_bill_data_reply() -> None:
    raw = {
        "resultCode": "0",
        "resultDesc": "success",
        "resultData": {"responseId": RESPONSE_ID, "unexpected": "ignored"},
        "response": {"version": "2.0", "resultCode": "0", "resultMsg": "success"},
    }
    reply = CcfsReply.model_validate(raw)
    assert reply.ok
    assert QueryBillDataResult.model_validate(reply.resultData).responseId == RESPONSE_ID


def test_failure_reply_with_empty_result_data() -> None:
    reply = CcfsReply.model_validate({"resultCode": "0300012", "resultDesc": "no data", "resultData": ""})
    assert not reply.ok
    assert reply.resultCode == "0300012"
    assert reply.resultData == ""


def test_reply_tolerances() -> None:
    assert CcfsReply.model_validate({"resultCode": 0}).ok  # a number is read as its string
    reply = CcfsReply.model_validate({"resultCode": "0300009", "foo": "bar"})
    assert (reply.resultCode, reply.resultDesc, reply.resultData) == ("0300009", "", None)
    with pytest.raises(ValidationError):
        CcfsReply.model_validate({"resultDesc": "no code"})


URL1 = "https://obs.cn-north-4.myhuaweicloud.com/rec/a.wav?AccessKeyId=AK1&Expires=1700000000&Signature=ab%2Bc"
URL2 = "https://obs.cn-north-4.myhuaweicloud.com/rec/b.wav?AccessKeyId=AK1&Expires=1700000000&Signature=de%2Ff"
URL_WITH_COMMA = "https://obs.example.com/rec/c.wav?response-content-disposition=attachment,filename&Signature=x"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL1, [URL1]),
        ([URL1, URL2], [URL1, URL2]),
        (f"{URL1},{URL2}", [URL1, URL2]),
        (f"{URL1}, {URL2}", [URL1, URL2]),
        (URL_WITH_COMMA, [URL_WITH_COMMA]),
        (f"{URL_WITH_COMMA},{URL1}", [URL_WITH_COMMA, URL1]),
        (f"{URL1},{URL_WITH_COMMA}", [URL1, URL_WITH_COMMA]),
    ],
)
def test_record_file_url_shapes(url: object, expected: list[str]) -> None:
    reply = CcfsReply.model_validate({"resultCode": "0", "resultDesc": "success", "resultData": {"url": url}})
    assert RecordFileUrlResult.model_validate(reply.resultData).url == expected


@pytest.mark.parametrize("url", ["", [], None, 5])
def test_record_file_url_without_urls(url: object) -> None:
    with pytest.raises(ValidationError):
        RecordFileUrlResult.model_validate({"url": url})


def test_split_url_list() -> None:
    assert split_url_list(f" {URL1} ,{URL2} ") == [URL1, URL2]
    assert split_url_list("http://a/x,y,http://b/z") == ["http://a/x,y", "http://b/z"]


# ------------------------------------------------------------------ getRecordFileUrlFromObs and downloads


def test_get_record_file_url_request_verbatim() -> None:
    raw = (
        '{"callId": "1637742300-27", "beginTime": "2021-11-24 06:25:03", '
        '"endTime": "2021-11-25 06:25:11", "version": "2.0"}'
    )
    request = GetRecordFileUrlRequest.model_validate_json(raw)
    assert request.callId == "1637742300-27"
    assert request.beginTime == datetime(2021, 11, 24, 6, 25, 3)
    assert request.endTime == datetime(2021, 11, 25, 6, 25, 11)
    assert request.version == "2.0"
    assert json.loads(request.model_dump_json()) == json.loads(raw)  # flat, no wrapper


def test_get_record_file_url_version() -> None:
    base = {"callId": "1637742300-27", "beginTime": "2021-11-24 06:25:03", "endTime": "2021-11-25 06:25:11"}
    assert GetRecordFileUrlRequest.model_validate({**base, "version": ""}).version is None  # UTC times
    absent = GetRecordFileUrlRequest.model_validate(base)
    assert "version" not in absent.model_fields_set  # a receiver can tell "absent" (UTC) from "2.0"
    assert code_of(GetRecordFileUrlRequest, {**base, "version": "1.0"}) == "0300006"
    assert code_of(GetRecordFileUrlRequest, {**base, "callId": "1" * 26}) == "0300003"
    assert code_of(GetRecordFileUrlRequest, {**base, "callId": ""}) == "0300002"


def test_download_record_file_and_download_record() -> None:
    raw = {"request": {"version": "2.0"}, "msgBody": {"fileName": "/10/1/record/100/13533/0903379.wav"}}
    assert DownloadRecordFileRequest.model_validate(raw).msgBody.fileName == "/10/1/record/100/13533/0903379.wav"
    raw2 = {"request": {"version": "2.0"}, "msgBody": {"fileName": "X:/17/0/20180903/15470/2043295.V3", "ccId": ""}}
    body = DownloadRecordRequest.model_validate(raw2).msgBody
    assert (body.fileName, body.ccId) == ("X:/17/0/20180903/15470/2043295.V3", None)
    body = DownloadRecordRequest.model_validate({"msgBody": {"fileName": "1637742300-27", "ccId": "1"}}).msgBody
    assert (body.fileName, body.ccId) == ("1637742300-27", "1")


# ------------------------------------------------------------------ result codes


def test_result_code_mapping() -> None:
    wrapped = {"request": {"version": "2.0"}, "msgBody": {"billFileName": BILL_FILE}}
    assert code_of(DownloadBillFileRequest, {"request": {"version": "2.0"}, "msgBody": {}}) == "0300001"  # missing
    assert code_of(DownloadBillFileRequest, {"request": {"version": "2.0"}}) == "0300001"
    assert code_of(QueryBillDataBody, query_body(dataType=...)) == "0300001"
    assert code_of(DownloadBillFileBody, {"billFileName": ""}) == "0300002"  # empty
    assert code_of(QueryBillDataBody, query_body(accountId="a" * 21)) == "0300003"  # too long
    assert code_of(QueryBillDataBody, query_body(callId="1" * 26)) == "0300003"
    assert code_of(DownloadBillFileRequest, {**wrapped, "request": {"version": "1.0"}}) == "0300006"  # version
    assert code_of(DownloadBillFileBody, {"billFileName": "20180231_abc.zip"}) == "0300010"  # date in a name
    assert code_of(DownloadBillFileBody, {"billFileName": "abc.zip"}) == "0300004"  # malformed
    assert code_of(QueryBillDataBody, query_body(endTime="2026-01-05 00:00:00")) == "0300004"  # window


def test_result_code_for_too_short_and_empty_body() -> None:
    class Probe(BaseModel):
        value: str = Field(min_length=3)

    with pytest.raises(ValidationError) as caught:
        Probe(value="ab")
    assert result_code_for(caught.value) == "0300005"
    assert result_code_for(caught.value, body_was_empty=True) == "0300007"


def test_protocol_version_constant() -> None:
    assert PROTOCOL_VERSION == "2.0"
