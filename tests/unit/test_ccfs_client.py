"""CcfsClient against mocked transports (httpx.MockTransport, pytest-httpx) and a local TLS server.

Every request the client sends is checked independently: the exact body bytes, the path, the
headers, and that ``ccfs.auth.verify`` accepts its Authorization over the bytes actually sent.
Sleeping is faked everywhere; nothing here waits on real time.
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock, IteratorStream

import ccfs.client
from ccfs.auth import verify
from ccfs.client import CCFS_PATH, CcfsClient, CcfsConfig, CcfsRequestError, RetryPolicy
from ccfs.errors import (
    CcfsAuthError,
    CcfsError,
    CcfsNotFound,
    CcfsPermanentError,
    CcfsProtocolError,
    CcfsTransientError,
    CcfsUnknownResultCode,
)

AK = "testak"
SK = "testsk"
NOW = datetime(2018, 7, 2, 2, 43, 8, tzinfo=UTC)
BASE = "https://10.0.0.1:28443"
HOST = "10.0.0.1:28443"
JSON_CT = "application/json;charset=UTF-8"
OCTET_CT = "Application/Octet-stream;charset=UTF-8"  # sic, as the vendor sends it
BILL = "20180702_9239cb50a8384bb0ab503441bf089446.zip"
RESPONSE_ID = "9239cb50a8384bb0ab503441bf089446"
VECTOR_A_AUTH = (
    "auth-v2/testak/2018-07-02T02:43:08Z/content-length;content-type;host/"
    "5be465b8b9367be46508c1829792af8f64e2f28ae7affca15ff22792a39b9c10"
)
BEGIN = datetime(2021, 11, 24, 6, 25, 3)
END = datetime(2021, 11, 25, 6, 25, 11)
PRESIGNED = "https://obs.example.com/bucket/rec.wav?AccessKeyId=AKXYZ&Expires=1&Signature=SECRETSIG"
WAV = b"RIFF" + b"\x00" * 40 + b"WAVEdata"


# ---------------------------------------------------------------------------- helpers


class GenStream(httpx.SyncByteStream):
    """A response body produced lazily by a generator (so tests can act between chunks)."""

    def __init__(self, factory: Callable[[], Iterator[bytes]]) -> None:
        self._factory = factory

    def __iter__(self) -> Iterator[bytes]:
        yield from self._factory()


Reply = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted CC-FS: answers the scripted replies in order and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if not self.replies:
            raise AssertionError("unexpected extra request")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)


def json_reply(code: str | int = "0", desc: str = "success", data: Any = "", status: int = 200) -> httpx.Response:
    body = {
        "resultCode": code,
        "resultDesc": desc,
        "resultData": data,
        "response": {"version": "2.0", "resultCode": str(code), "resultMsg": desc},
    }
    return httpx.Response(status, headers={"Content-Type": JSON_CT}, content=json.dumps(body).encode())


def binary_reply(body: bytes, content_type: str | None = OCTET_CT, chunks: int = 1) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return httpx.Response(200, headers=headers, stream=GenStream(lambda: iter(parts)))


def reset_after(first: bytes, content_type: str = OCTET_CT) -> httpx.Response:
    """A binary reply whose connection resets after ``first`` was delivered."""

    def gen() -> Iterator[bytes]:
        yield first
        raise httpx.ReadError("[Errno 104] Connection reset by peer")

    return httpx.Response(200, headers={"Content-Type": content_type}, stream=GenStream(gen))


class NonSeekable(io.RawIOBase):
    """A write-only sink, like a multipart upload: cannot be rewound."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


class RecordingSink(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, b: Any) -> int:
        self.writes.append(len(b))
        return super().write(b)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., tuple[CcfsClient, Server]]]:
    clients: list[CcfsClient] = []

    def make(
        *replies: Reply,
        base_url: str = BASE,
        clock: Callable[[], datetime] | None = None,
        **config: Any,
    ) -> tuple[CcfsClient, Server]:
        server = Server(*replies)
        client = CcfsClient(
            CcfsConfig(base_url, AK, SK, **config),
            transport=httpx.MockTransport(server),
            sleep=sleeps.append,
            clock=clock or (lambda: NOW),
        )
        clients.append(client)
        return client, server

    yield make
    for client in clients:
        client.close()


def assert_signed(request: httpx.Request, op: str, *, path_prefix: str = "", host: str = HOST) -> bytes:
    """Independently check one sent request; return its body bytes."""
    body = request.content
    assert request.method == "POST"
    assert request.url.path == f"{path_prefix}/CCFS/resource/ccfs/{op}"
    assert request.url.query == b""
    assert request.headers["content-type"] == JSON_CT
    assert request.headers["content-length"] == str(len(body))
    assert request.headers["host"] == host
    ak = verify(
        request.headers["authorization"],
        "POST",
        request.url.path,
        request.headers.items(),
        body,
        secret_for=lambda a: SK if a == AK else None,
        now=NOW,
    )
    assert ak == AK
    assert request.headers["authorization"].split("/")[3] == "content-length;content-type;host"
    return body


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------- happy paths


def test_query_bill_data_sends_signed_wrapped_body(make_client):
    client, server = make_client(json_reply(data={"responseId": RESPONSE_ID}))

    rid = client.query_bill_data(
        datetime(2018, 7, 1), datetime(2018, 7, 2), callback_url="https://cb.example.com/prod/callback"
    )

    assert rid == RESPONSE_ID
    (request,) = server.requests
    assert assert_signed(request, "queryBillData") == compact(
        {
            "request": {"version": "2.0"},
            "msgBody": {
                "beginTime": "2018-07-01 00:00:00",
                "endTime": "2018-07-02 00:00:00",
                "dataType": "call_record",
                "callBackURL": "https://cb.example.com/prod/callback",
            },
        }
    )


def test_query_bill_data_sends_every_given_filter(make_client):
    client, server = make_client(json_reply(data={"responseId": RESPONSE_ID}))

    client.query_bill_data(
        BEGIN,
        END,
        data_type="record",
        callback_url="https://cb/x",
        account_id="acc1",
        agent_id="1001",
        call_id="1637742300-27",
        caller_no="+8613800000000",
        callee_no="4001",
        callee_no2="张三",
    )

    body = json.loads(assert_signed(server.requests[0], "queryBillData"))
    assert body["msgBody"] == {
        "beginTime": "2021-11-24 06:25:03",
        "endTime": "2021-11-25 06:25:11",
        "accountId": "acc1",
        "agentId": "1001",
        "callId": "1637742300-27",
        "callerNo": "+8613800000000",
        "calleeNo": "4001",
        "calleeNo2": "张三",
        "dataType": "record",
        "callBackURL": "https://cb/x",
    }
    assert "张三".encode() in server.requests[0].content  # UTF-8 on the wire, signed as such


@pytest.mark.parametrize("empty", [None, ""])
def test_query_bill_data_does_not_send_empty_optional_fields(make_client, empty):
    client, server = make_client(json_reply(data={"responseId": RESPONSE_ID}))

    client.query_bill_data(
        BEGIN,
        END,
        callback_url="https://cb/x",
        account_id=empty,
        agent_id=empty,
        call_id=empty,
        caller_no=empty,
        callee_no=empty,
        callee_no2=empty,
    )

    msg_body = json.loads(server.requests[0].content)["msgBody"]
    assert set(msg_body) == {"beginTime", "endTime", "dataType", "callBackURL"}


def test_download_bill_file_reproduces_vendor_vector_a(make_client):
    """Same ak/sk/time/host/body as the protocol's vector A: the Authorization must match exactly."""
    client, server = make_client(binary_reply(b"PK\x03\x04zip-bytes", chunks=3))
    sink = io.BytesIO()

    written = client.download_bill_file(BILL, sink)

    assert written == len(b"PK\x03\x04zip-bytes")
    assert sink.getvalue() == b"PK\x03\x04zip-bytes"
    (request,) = server.requests
    assert request.content == (b'{"request":{"version":"2.0"},"msgBody":{"billFileName":"' + BILL.encode() + b'"}}')
    assert request.headers["content-length"] == "104"
    assert request.headers["authorization"] == VECTOR_A_AUTH
    assert_signed(request, "downloadBillFile")


def test_get_record_file_urls_sends_flat_body(make_client):
    client, server = make_client(json_reply(data={"url": PRESIGNED}))

    urls = client.get_record_file_urls("1637742300-27", BEGIN, END)

    assert urls == [PRESIGNED]
    assert assert_signed(server.requests[0], "getRecordFileUrlFromObs") == compact(
        {
            "callId": "1637742300-27",
            "beginTime": "2021-11-24 06:25:03",
            "endTime": "2021-11-25 06:25:11",
            "version": "2.0",
        }
    )


def test_get_record_file_urls_without_version_omits_it(make_client):
    client, server = make_client(json_reply(data={"url": PRESIGNED}))

    client.get_record_file_urls("1637742300-27", BEGIN, END, version=None)

    assert json.loads(server.requests[0].content) == {
        "callId": "1637742300-27",
        "beginTime": "2021-11-24 06:25:03",
        "endTime": "2021-11-25 06:25:11",
    }


def test_download_record_file_streams_wav(make_client):
    client, server = make_client(binary_reply(WAV, content_type="audio/wav", chunks=4))
    sink = io.BytesIO()

    assert client.download_record_file("/10/1/record/100/13533/0903379.wav", sink) == len(WAV)

    assert sink.getvalue() == WAV
    assert assert_signed(server.requests[0], "downloadRecordFile") == compact(
        {"request": {"version": "2.0"}, "msgBody": {"fileName": "/10/1/record/100/13533/0903379.wav"}}
    )


def test_download_record_returns_media_type_and_sends_cc_id(make_client):
    client, server = make_client(binary_reply(b"PK\x03\x04two-wavs", content_type="application/zip"))
    sink = io.BytesIO()

    result = client.download_record("X:\\17\\0\\20180903\\15470\\2043295.V3", sink, cc_id="1")

    assert result == (len(b"PK\x03\x04two-wavs"), "application/zip")
    assert assert_signed(server.requests[0], "downloadRecord") == compact(
        {"request": {"version": "2.0"}, "msgBody": {"fileName": "X:/17/0/20180903/15470/2043295.V3", "ccId": "1"}}
    )


def test_download_record_without_cc_id_and_vendor_content_type(make_client):
    client, server = make_client(binary_reply(WAV))
    sink = io.BytesIO()

    assert client.download_record("1637742300-27", sink) == (len(WAV), "application/octet-stream")
    assert json.loads(server.requests[0].content)["msgBody"] == {"fileName": "1637742300-27"}


def test_binary_without_content_type_is_octet_stream(make_client):
    client, _ = make_client(binary_reply(WAV, content_type=None))
    assert client.download_record("1637742300-27", io.BytesIO()) == (len(WAV), "application/octet-stream")


def test_base_url_path_prefix_and_default_port(make_client):
    client, server = make_client(
        json_reply(data={"responseId": RESPONSE_ID}), base_url="https://ccfs.example.com:443/gw/prod/"
    )

    client.query_bill_data(BEGIN, END, callback_url="https://cb/x")

    request = server.requests[0]
    assert str(request.url) == "https://ccfs.example.com/gw/prod/CCFS/resource/ccfs/queryBillData"
    assert_signed(request, "queryBillData", path_prefix="/gw/prod", host="ccfs.example.com")
    assert client.operation_url("queryBillData") == str(request.url)


def test_operation_url_and_http_property(make_client):
    client, _ = make_client()
    assert client.operation_url("downloadBillFile") == f"{BASE}{CCFS_PATH}/downloadBillFile"
    with pytest.raises(ValueError, match="operation"):
        client.operation_url("../admin")
    http = client.http
    assert isinstance(http, httpx.Client)
    assert http.follow_redirects is False
    assert "authorization" not in http.headers  # reusable for pre-signed GETs without leaking
    assert http.timeout.connect == 5.0
    assert http.timeout.read == 60.0


def test_context_manager_closes_http_client():
    with CcfsClient(CcfsConfig(BASE, AK, SK), transport=httpx.MockTransport(Server())) as client:
        http = client.http
    assert http.is_closed


def test_reply_parsing_is_tolerant(make_client):
    reply = httpx.Response(
        200,
        headers={"Content-Type": "APPLICATION/JSON; charset=utf-8"},
        content=b'\xef\xbb\xbf{"resultCode":0,"resultData":{"responseId":"%s","extra":1},"new":true}'
        % RESPONSE_ID.encode(),
    )
    client, _ = make_client(reply)
    assert client.query_bill_data(BEGIN, END, callback_url="https://cb/x") == RESPONSE_ID


def test_result_data_as_json_string_is_accepted(make_client):
    client, _ = make_client(json_reply(data=json.dumps({"responseId": RESPONSE_ID})))
    assert client.query_bill_data(BEGIN, END, callback_url="https://cb/x") == RESPONSE_ID


@pytest.mark.parametrize("data", ["", {}, {"responseId": ""}, {"responseId": 7}, None])
def test_success_without_response_id_is_protocol_error(make_client, data, sleeps):
    client, server = make_client(json_reply(data=data))
    with pytest.raises(CcfsProtocolError, match=r"queryBillData: .*responseId"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "response_id",
    ["9239cb50a8384bb0ab503441bf08944", "Ab3_x-Y.9", "r1", "A" * 36, "9239CB50-A838-4BB0-AB50-3441BF089446"],
)
def test_any_response_id_the_field_allows_is_returned(make_client, response_id):
    client, _ = make_client(json_reply(data={"responseId": response_id}))
    assert client.query_bill_data(BEGIN, END, callback_url="https://cb/x") == response_id


@pytest.mark.parametrize("response_id", ["a/b", "a#b", "A" * 37, "-abc", "a b", "a|b", "ré"])
def test_unusable_response_id_is_a_permanent_error_not_retried(make_client, sleeps, response_id):
    client, server = make_client(json_reply(data={"responseId": response_id}))
    with pytest.raises(CcfsPermanentError, match="responseId the exporter cannot use") as info:
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert type(info.value) is CcfsPermanentError
    assert "1-36 letters" in str(info.value)
    assert len(server.requests) == 1 and sleeps == []


# ---------------------------------------------------------------------------- URL list shapes

URL_A = "https://obs.example.com/b/1.wav?AccessKeyId=A&Expires=1&Signature=x%2Cy"
URL_B = "https://obs.example.com/b/2.wav?AccessKeyId=A&Expires=1&Signature=z"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"url": URL_A}, [URL_A], id="string"),
        pytest.param({"url": [URL_A, URL_B]}, [URL_A, URL_B], id="json-array"),
        pytest.param({"url": f"{URL_A},{URL_B}"}, [URL_A, URL_B], id="comma-separated"),
        pytest.param({"url": f"{URL_A}, {URL_B}"}, [URL_A, URL_B], id="comma-space"),
        pytest.param([URL_A, URL_B], [URL_A, URL_B], id="resultData-list"),
        pytest.param({"urls": [URL_A, URL_B]}, [URL_A, URL_B], id="resultData-urls"),
        pytest.param(json.dumps({"url": [URL_A]}), [URL_A], id="resultData-json-string"),
        pytest.param({"url": "https://h/a.wav?x=1,2"}, ["https://h/a.wav?x=1,2"], id="comma-inside-url"),
        pytest.param({"url": f"{URL_A};{URL_B}"}, [URL_A, URL_B], id="semicolon-separated"),
        pytest.param({"url": f"{URL_A}; {URL_B};"}, [URL_A, URL_B], id="semicolon-space-trailing"),
        pytest.param({"url": f"{URL_A} {URL_B}"}, [URL_A, URL_B], id="space-separated"),
        pytest.param({"url": f"{URL_A}\n{URL_B}\n"}, [URL_A, URL_B], id="newline-separated"),
        pytest.param({"url": f"{URL_A}\r\n\t{URL_B}"}, [URL_A, URL_B], id="crlf-tab-separated"),
        pytest.param({"url": "https://h/a.wav?x=1;2"}, ["https://h/a.wav?x=1;2"], id="semicolon-inside-url"),
        pytest.param({"url": [f"{URL_A},{URL_B}"]}, [URL_A, URL_B], id="array-of-one-joined-string"),
    ],
)
def test_record_file_url_shapes(make_client, data, expected):
    client, _ = make_client(json_reply(data=data))
    assert client.get_record_file_urls("1637742300-27", BEGIN, END) == expected


def top_level_url_reply(url: Any, data: Any) -> httpx.Response:
    body = {"resultCode": "0", "resultDesc": "success", "resultData": data, "url": url}
    return httpx.Response(200, headers={"Content-Type": JSON_CT}, content=json.dumps(body).encode())


@pytest.mark.parametrize("data", ["", {}, None], ids=["empty-string", "empty-object", "null"])
@pytest.mark.parametrize(
    "url",
    [[URL_A, URL_B], f"{URL_A},{URL_B}", f"{URL_A}\n{URL_B}"],
    ids=["array", "comma", "newline"],
)
def test_url_beside_result_data_at_top_level(make_client, url, data):
    client, _ = make_client(top_level_url_reply(url, data))
    assert client.get_record_file_urls("1637742300-27", BEGIN, END) == [URL_A, URL_B]


def test_url_inside_result_data_wins_over_top_level(make_client):
    client, _ = make_client(top_level_url_reply(URL_B, {"url": URL_A}))
    assert client.get_record_file_urls("1637742300-27", BEGIN, END) == [URL_A]


@pytest.mark.parametrize("data", ["", {}, {"url": []}, {"url": ""}, {"url": "ftp://h/a.wav"}, {"url": [1]}])
def test_record_file_url_missing_or_bad_is_protocol_error(make_client, data):
    client, _ = make_client(json_reply(data=data))
    with pytest.raises(CcfsProtocolError, match="getRecordFileUrlFromObs"):
        client.get_record_file_urls("1637742300-27", BEGIN, END)


# ---------------------------------------------------------------------------- result codes

PERMANENT = [f"030000{i}" for i in range(1, 8)] + ["0300010"]


@pytest.mark.parametrize("code", PERMANENT)
def test_permanent_codes_are_not_retried(make_client, sleeps, code):
    client, server = make_client(json_reply(code=code, desc="param error"))

    with pytest.raises(CcfsPermanentError) as info:
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")

    assert type(info.value) is CcfsPermanentError
    assert info.value.code == code
    assert "queryBillData" in str(info.value)
    assert code in str(info.value)
    assert len(server.requests) == 1
    assert sleeps == []


def test_integer_result_code_is_mapped(make_client, sleeps):
    client, server = make_client(json_reply(code=300012))  # JSON number: the leading zero is lost
    with pytest.raises(CcfsNotFound, match="resultCode 0300012"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert len(server.requests) == 1


def test_integer_flow_control_code_is_retried(make_client, sleeps):
    client, _ = make_client(json_reply(code=300009), json_reply(code=0, data={"responseId": RESPONSE_ID}))
    assert client.query_bill_data(BEGIN, END, callback_url="https://cb/x") == RESPONSE_ID
    assert len(sleeps) == 1


def _client_reporting_codes(server: Any, sleeps: list[float], seen: list[tuple[str, str]]) -> CcfsClient:
    """A client on ``server`` whose undocumented-code hook appends ``(operation, code)`` to ``seen``."""
    return CcfsClient(
        CcfsConfig(BASE, AK, SK),
        transport=httpx.MockTransport(server),
        sleep=sleeps.append,
        clock=lambda: NOW,
        on_unknown_code=lambda op, c: seen.append((op, c)),
    )


@pytest.mark.parametrize("code", ["-1", "ERR_INTERNAL", "12345678", "0300011", "0300099", "9999999"])
def test_undocumented_result_codes_are_retried_with_backoff_then_fail_transiently(sleeps, code):
    seen: list[tuple[str, str]] = []
    server = Server(*[json_reply(code=code, desc="boom")] * 4)
    client = _client_reporting_codes(server, sleeps, seen)
    with client, pytest.raises(CcfsUnknownResultCode) as info:
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert isinstance(info.value, CcfsTransientError) and not isinstance(info.value, CcfsPermanentError)
    assert code in str(info.value) and "boom" in str(info.value) and "gave up after 4 attempts" in str(info.value)
    assert len(server.requests) == 4 and len(sleeps) == 3  # bounded: RetryPolicy.attempts, backoff between
    assert seen == [("queryBillData", code)] * 4  # every sighting reaches the alarm hook


def test_undocumented_code_then_success_still_reports_the_code(sleeps):
    seen: list[tuple[str, str]] = []
    server = Server(json_reply(code="0399999"), json_reply(data={"url": URL_A}))
    client = _client_reporting_codes(server, sleeps, seen)
    with client:
        assert client.get_record_file_urls("1637742300-27", BEGIN, END) == [URL_A]
    assert seen == [("getRecordFileUrlFromObs", "0399999")] and len(sleeps) == 1


def test_documented_codes_do_not_reach_the_unknown_code_hook(sleeps):
    seen: list[tuple[str, str]] = []
    server = Server(json_reply(code="0300009"), json_reply(code="0300004"))
    client = CcfsClient(
        CcfsConfig(BASE, AK, SK),
        transport=httpx.MockTransport(server),
        sleep=sleeps.append,
        clock=lambda: NOW,
        on_unknown_code=lambda op, c: seen.append((op, c)),
    )
    with client, pytest.raises(CcfsPermanentError):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert seen == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.query_bill_data(BEGIN, END, callback_url="https://cb/x"), id="queryBillData"),
        pytest.param(lambda c: c.get_record_file_urls("1-2", BEGIN, END), id="getRecordFileUrlFromObs"),
        pytest.param(lambda c: c.download_bill_file(BILL, io.BytesIO()), id="downloadBillFile"),
        pytest.param(lambda c: c.download_record_file("/a.wav", io.BytesIO()), id="downloadRecordFile"),
        pytest.param(lambda c: c.download_record("1-2", io.BytesIO()), id="downloadRecord"),
    ],
)
def test_not_found_on_every_operation(make_client, sleeps, call, request):
    client, server = make_client(json_reply(code="0300012", desc="no data found"))

    with pytest.raises(CcfsNotFound) as info:
        call(client)

    op = request.node.callspec.id
    assert str(info.value).startswith(f"{op}: ")
    assert info.value.code == "0300012"
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("code", ["0300008", "0300009"])
def test_flow_control_is_retried_then_succeeds(make_client, sleeps, code):
    client, server = make_client(json_reply(code=code), json_reply(data={"responseId": RESPONSE_ID}))

    assert client.query_bill_data(BEGIN, END, callback_url="https://cb/x") == RESPONSE_ID
    assert len(server.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        pytest.param(lambda: json_reply(code="0300009"), "0300009", id="0300009"),
        pytest.param(lambda: json_reply(code="0300008"), "0300008", id="0300008"),
        pytest.param(lambda: httpx.Response(500), "500", id="http-500"),
        pytest.param(lambda: httpx.Response(503, text="busy"), "503", id="http-503"),
        pytest.param(lambda: httpx.Response(429), "429", id="http-429"),
        pytest.param(lambda: httpx.ReadTimeout("timed out"), None, id="read-timeout"),
        pytest.param(lambda: httpx.ConnectTimeout("timed out"), None, id="connect-timeout"),
        pytest.param(lambda: httpx.ConnectError("[Errno 111] Connection refused"), None, id="connect-error"),
        pytest.param(
            lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
            None,
            id="remote-protocol",
        ),
        pytest.param(lambda: reset_after(b'{"resultCo', content_type=JSON_CT), None, id="reset-mid-json"),
    ],
)
def test_transient_failures_are_retried_up_to_the_bound(make_client, sleeps, reply, code):
    policy = RetryPolicy(attempts=3, base_delay=0.5, max_delay=8.0)
    client, server = make_client(reply(), reply(), reply(), retry=policy)

    with pytest.raises(CcfsTransientError) as info:
        client.get_record_file_urls("1637742300-27", BEGIN, END)

    assert len(server.requests) == 3
    assert len(sleeps) == 2
    message = str(info.value)
    assert message.startswith("getRecordFileUrlFromObs: ")
    assert "gave up after 3 attempts" in message
    assert info.value.code == code
    assert info.value.retryable
    assert isinstance(info.value.__cause__, CcfsTransientError)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: httpx.Response(503), id="503"),
        pytest.param(lambda: httpx.ReadTimeout("timed out"), id="timeout"),
        pytest.param(lambda: httpx.ConnectError("refused"), id="connect"),
        pytest.param(lambda: httpx.ReadError("[Errno 104] Connection reset by peer"), id="reset"),
    ],
)
def test_transient_then_success(make_client, sleeps, failure):
    client, server = make_client(failure(), json_reply(data={"url": URL_A}))
    assert client.get_record_file_urls("1637742300-27", BEGIN, END) == [URL_A]
    assert len(server.requests) == 2
    assert len(sleeps) == 1


def test_http_401_is_auth_error_not_retried(make_client, sleeps):
    client, server = make_client(httpx.Response(401, text="unauthorized"))
    with pytest.raises(CcfsAuthError, match="queryBillData: HTTP 401") as info:
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert isinstance(info.value, CcfsPermanentError)
    assert not info.value.retryable
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [400, 403, 404, 405, 413])
def test_other_4xx_are_permanent(make_client, sleeps, status):
    client, server = make_client(json_reply(code="0300009", status=status))
    with pytest.raises(CcfsPermanentError, match=f"downloadBillFile: HTTP {status}") as info:
        client.download_bill_file(BILL, io.BytesIO())
    assert type(info.value) is CcfsPermanentError
    assert info.value.code == str(status)
    assert len(server.requests) == 1
    assert sleeps == []


def test_redirect_is_not_followed(make_client, sleeps):
    client, server = make_client(httpx.Response(302, headers={"Location": "http://10.0.0.1/login"}))
    with pytest.raises(CcfsProtocolError, match="redirect"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------- backoff


def test_backoff_is_bounded_full_jitter(make_client, sleeps):
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0)
    client, server = make_client(*[httpx.Response(503) for _ in range(6)], retry=policy)

    with pytest.raises(CcfsTransientError, match="gave up after 6 attempts"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")

    assert len(server.requests) == 6
    assert len(sleeps) == 5
    caps = [policy.backoff_cap(n) for n in range(5)]
    assert caps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert all(0.0 <= d <= cap for d, cap in zip(sleeps, caps, strict=True))


def test_backoff_grows_exponentially_to_the_cap(make_client, sleeps, monkeypatch):
    class Top:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            assert low == 0.0
            return high

    monkeypatch.setattr(ccfs.client, "_random", Top)
    policy = RetryPolicy(attempts=7, base_delay=0.25, max_delay=4.0)
    client, _ = make_client(*[json_reply(code="0300008") for _ in range(7)], retry=policy)

    with pytest.raises(CcfsTransientError):
        client.download_bill_file(BILL, io.BytesIO())

    assert sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_single_attempt_policy_never_sleeps(make_client, sleeps):
    client, server = make_client(httpx.Response(502), retry=RetryPolicy(attempts=1))
    with pytest.raises(CcfsTransientError, match="gave up after 1 attempt"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert len(server.requests) == 1
    assert sleeps == []


def test_backoff_cap_does_not_overflow():
    assert RetryPolicy(attempts=5000).backoff_cap(4000) == 8.0


def test_every_attempt_is_signed_afresh(make_client):
    times = iter([NOW, NOW + timedelta(seconds=3), NOW + timedelta(seconds=9)])
    client, server = make_client(
        httpx.Response(503),
        httpx.ReadTimeout("timed out"),
        json_reply(data={"responseId": RESPONSE_ID}),
        clock=lambda: next(times),
    )

    client.query_bill_data(BEGIN, END, callback_url="https://cb/x")

    stamps = [r.headers["authorization"].split("/")[2] for r in server.requests]
    assert stamps == ["2018-07-02T02:43:08Z", "2018-07-02T02:43:11Z", "2018-07-02T02:43:17Z"]
    assert len({r.content for r in server.requests}) == 1  # same bytes, new signature
    for request in server.requests:
        assert_signed(request, "queryBillData")


def test_retries_are_logged_without_secrets(make_client, caplog):
    caplog.set_level(logging.WARNING, logger="ccfs.client")
    client, server = make_client(
        httpx.ConnectError("connect to https://10.0.0.1:28443/x?token=SECRETQ failed"),
        json_reply(code="0300009", desc=f"throttled, see {PRESIGNED}"),
        json_reply(data={"url": PRESIGNED}),
    )

    client.get_record_file_urls("1637742300-27", BEGIN, END)

    records = [r for r in caplog.records if r.name == "ccfs.client"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert [r.attempt for r in records] == [1, 2]
    assert {r.operation for r in records} == {"getRecordFileUrlFromObs"}
    assert "ConnectError" in records[0].getMessage()
    assert "0300009" not in records[0].getMessage()
    assert "query flow-control" in records[1].getMessage()
    assert_no_secrets(caplog.text, server)
    for record in records:
        assert_no_secrets(" ".join(str(v) for v in vars(record).values()), server)


# ---------------------------------------------------------------------------- JSON vs binary


@pytest.mark.parametrize(
    ("code", "error"),
    [("0300012", CcfsNotFound), ("0300010", CcfsPermanentError), ("0300004", CcfsPermanentError)],
)
def test_json_error_on_download_leaves_sink_untouched(make_client, code, error):
    client, _ = make_client(json_reply(code=code, desc=""))
    sink = io.BytesIO(b"keep")
    sink.seek(4)

    with pytest.raises(error, match=f"downloadBillFile: .*{code}"):
        client.download_bill_file(BILL, sink)

    assert sink.getvalue() == b"keep"
    assert sink.tell() == 4


def test_json_flow_control_on_download_then_binary(make_client, sleeps):
    client, _ = make_client(json_reply(code="0300008"), binary_reply(b"PK\x03\x04data"))
    sink = io.BytesIO()
    assert client.download_bill_file(BILL, sink) == 8
    assert sink.getvalue() == b"PK\x03\x04data"
    assert len(sleeps) == 1


def test_json_success_on_download_is_protocol_error(make_client, sleeps):
    client, server = make_client(json_reply(code="0", data={"responseId": RESPONSE_ID}))
    sink = io.BytesIO()
    with pytest.raises(CcfsProtocolError, match="downloadRecordFile"):
        client.download_record_file("/a.wav", sink)
    assert sink.getvalue() == b""
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("content_type", [OCTET_CT, "audio/wav", "application/zip", None])
def test_binary_on_json_operation_is_protocol_error(make_client, sleeps, content_type):
    client, server = make_client(binary_reply(WAV, content_type=content_type))
    with pytest.raises(CcfsProtocolError, match="queryBillData: expected a JSON reply"):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert len(server.requests) == 1
    assert sleeps == []


def test_html_page_on_download_is_protocol_error(make_client):
    client, _ = make_client(httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>login</html>"))
    sink = io.BytesIO()
    with pytest.raises(CcfsProtocolError, match="HTML"):
        client.download_record("1-2", sink)
    assert sink.getvalue() == b""


def test_undecodable_json_is_protocol_error(make_client):
    client, _ = make_client(httpx.Response(200, headers={"Content-Type": JSON_CT}, content=b"<oops"))
    with pytest.raises(CcfsProtocolError, match="JSON reply"):
        client.download_bill_file(BILL, io.BytesIO())


def test_empty_binary_body_is_protocol_error(make_client):
    client, _ = make_client(binary_reply(b""))
    with pytest.raises(CcfsProtocolError, match="empty"):
        client.download_record_file("/a.wav", io.BytesIO())


def test_oversized_json_reply_is_refused(make_client, monkeypatch):
    monkeypatch.setattr(ccfs.client, "_MAX_JSON_REPLY", 64)
    client, _ = make_client(json_reply(data={"url": URL_A + "x" * 100}))
    with pytest.raises(CcfsProtocolError, match="larger than 64 bytes"):
        client.get_record_file_urls("1-2", BEGIN, END)


# ---------------------------------------------------------------------------- streaming


def test_sink_receives_chunks_before_the_body_ends(make_client):
    parts = [b"A" * 8, b"B" * 8, b"C" * 8, b"D" * 8]
    sink = RecordingSink()
    observed: list[bytes] = []

    def gen() -> Iterator[bytes]:
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                observed.append(sink.getvalue())
                assert sink.getvalue() == b"".join(parts[:-1]), "client buffered the body"
            yield part

    reply = httpx.Response(200, headers={"Content-Type": OCTET_CT}, stream=GenStream(gen))
    client, _ = make_client(reply, chunk_size=8)

    assert client.download_bill_file(BILL, sink) == 32

    assert observed == [b"A" * 8 + b"B" * 8 + b"C" * 8]
    assert sink.getvalue() == b"".join(parts)
    assert sink.writes == [8, 8, 8, 8]


def test_chunks_never_exceed_chunk_size(make_client):
    body = bytes(range(256)) * 40
    sink = RecordingSink()
    client, _ = make_client(binary_reply(body, chunks=3), chunk_size=1000)
    assert client.download_record_file("/a.wav", sink) == len(body)
    assert sink.getvalue() == body
    assert max(sink.writes) <= 1000
    assert len(sink.writes) == 11


def test_mid_body_reset_with_seekable_sink_is_retried_cleanly(make_client, sleeps):
    body = b"PK\x03\x04" + b"z" * 60
    client, server = make_client(reset_after(body[:30]), binary_reply(body, chunks=4), chunk_size=16)
    sink = io.BytesIO()

    assert client.download_bill_file(BILL, sink) == len(body)

    assert sink.getvalue() == body  # exactly once, no leftovers of the first try
    assert len(server.requests) == 2
    assert len(sleeps) == 1


def test_retry_rewinds_to_the_sinks_start_position(make_client):
    client, server = make_client(reset_after(b"partial"), binary_reply(WAV), chunk_size=4)
    sink = io.BytesIO()
    sink.write(b"HEADER")

    assert client.download_record_file("/a.wav", sink) == len(WAV)
    assert sink.getvalue() == b"HEADER" + WAV
    assert len(server.requests) == 2


def test_short_body_against_content_length_is_retried(make_client, sleeps):
    short = httpx.Response(
        200,
        headers={"Content-Type": OCTET_CT, "Content-Length": str(len(WAV) + 10)},
        stream=GenStream(lambda: iter([WAV])),
    )
    client, server = make_client(short, binary_reply(WAV))
    sink = io.BytesIO()

    assert client.download_record_file("/a.wav", sink) == len(WAV)
    assert sink.getvalue() == WAV
    assert len(server.requests) == 2


def test_mid_body_reset_with_non_seekable_sink_raises_at_once(make_client, sleeps):
    client, server = make_client(reset_after(b"RIFF1234"), binary_reply(WAV), chunk_size=4)
    sink = NonSeekable()

    with pytest.raises(CcfsTransientError, match=r"downloadRecordFile: .*non-seekable") as info:
        client.download_record_file("/a.wav", sink)

    assert info.value.retryable
    assert bytes(sink.data) == b"RIFF1234"
    assert len(server.requests) == 1
    assert sleeps == []


def test_non_seekable_sink_is_retried_when_nothing_was_written(make_client, sleeps):
    client, server = make_client(httpx.Response(503), reset_after(b""), binary_reply(WAV))
    sink = NonSeekable()
    assert client.download_record("1-2", sink) == (len(WAV), "application/octet-stream")
    assert bytes(sink.data) == WAV
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_exhausted_download_leaves_seekable_sink_rewound(make_client, sleeps):
    client, server = make_client(reset_after(b"one"), reset_after(b"two"), retry=RetryPolicy(attempts=2), chunk_size=2)
    sink = io.BytesIO()
    with pytest.raises(CcfsTransientError, match="gave up after 2 attempts"):
        client.download_bill_file(BILL, sink)
    assert sink.getvalue() == b""
    assert len(server.requests) == 2


def test_sink_errors_propagate_unchanged(make_client, sleeps):
    class Full(io.BytesIO):
        def write(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    client, server = make_client(binary_reply(WAV))
    with pytest.raises(OSError, match="No space"):
        client.download_record_file("/a.wav", Full())
    assert len(server.requests) == 1
    assert sleeps == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=1, max_size=3000), chunks=st.integers(1, 7), chunk_size=st.integers(1, 700))
def test_streaming_round_trips_any_body(body, chunks, chunk_size):
    server = Server(binary_reply(body, chunks=chunks))
    sink = RecordingSink()
    with CcfsClient(CcfsConfig(BASE, AK, SK, chunk_size=chunk_size), transport=httpx.MockTransport(server)) as client:
        assert client.download_bill_file(BILL, sink) == len(body)
    assert sink.getvalue() == body
    assert max(sink.writes) <= chunk_size


@settings(max_examples=40, deadline=None)
@given(
    agent=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    caller=st.one_of(st.none(), st.text(min_size=1, max_size=25)),
)
def test_any_field_value_is_signed_over_the_bytes_sent(agent, caller):
    server = Server(json_reply(data={"responseId": RESPONSE_ID}))
    with CcfsClient(CcfsConfig(BASE, AK, SK), transport=httpx.MockTransport(server), clock=lambda: NOW) as client:
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x", agent_id=agent, caller_no=caller)
    msg_body = json.loads(assert_signed(server.requests[0], "queryBillData"))["msgBody"]
    assert msg_body.get("agentId") == agent
    assert msg_body.get("callerNo") == caller


# ---------------------------------------------------------------------------- invalid requests


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param(
            lambda c: c.query_bill_data(BEGIN, BEGIN + timedelta(days=3, seconds=1), callback_url="https://cb/x"),
            r"request \(window\)",
            id="window-over-3-days",
        ),
        pytest.param(
            lambda c: c.query_bill_data(BEGIN, END, callback_url="ftp://cb/x?token=SECRETQ"),
            r"callBackURL \(string_pattern_mismatch\)",
            id="bad-callback-url",
        ),
        pytest.param(
            lambda c: c.query_bill_data(BEGIN, END, data_type="everything", callback_url="https://cb/x"),
            "dataType",
            id="bad-data-type",
        ),
        pytest.param(
            lambda c: c.query_bill_data(BEGIN.replace(tzinfo=UTC), END, callback_url="https://cb/x"),
            "beginTime",
            id="aware-datetime",
        ),
        pytest.param(lambda c: c.download_bill_file("../../etc/passwd", io.BytesIO()), "billFileName"),
        pytest.param(lambda c: c.get_record_file_urls("x" * 26, BEGIN, END), "callId", id="long-call-id"),
        pytest.param(lambda c: c.get_record_file_urls("1-2", BEGIN, END, version="1.0"), "version"),
        pytest.param(lambda c: c.download_record("", io.BytesIO()), "fileName", id="empty-name"),
    ],
)
def test_invalid_requests_are_refused_before_sending(make_client, call, field):
    client, server = make_client()
    with pytest.raises(CcfsRequestError, match=field) as info:
        call(client)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CcfsPermanentError)
    assert "SECRETQ" not in str(info.value)
    assert info.value.__cause__ is None
    assert server.requests == []


# ---------------------------------------------------------------------------- config


def test_config_repr_hides_sk():
    config = CcfsConfig(BASE, AK, "very-secret-sk")
    assert "very-secret-sk" not in repr(config)
    assert AK in repr(config)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://h"},
        {"base_url": "https://"},
        {"base_url": "https://h:abc"},
        {"base_url": "https://h/x?y=1"},
        {"base_url": "https://u:p@h"},
        {"ak": ""},
        {"sk": ""},
        {"ca_bundle": "/ca.pem", "insecure": True},
        {"read_timeout": 0},
        {"chunk_size": 0},
    ],
)
def test_config_validation(kwargs):
    base = {"base_url": BASE, "ak": AK, "sk": SK}
    with pytest.raises(ValueError, match=r"\w"):
        CcfsConfig(**(base | kwargs))


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay": -1}, {"max_delay": -0.1}])
def test_retry_policy_validation(kwargs):
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


def test_insecure_logs_a_warning_once(caplog):
    caplog.set_level(logging.WARNING, logger="ccfs.client")
    client = CcfsClient(CcfsConfig(BASE, AK, SK, insecure=True), transport=httpx.MockTransport(Server()))
    client.close()
    warnings = [r for r in caplog.records if r.name == "ccfs.client"]
    assert len(warnings) == 1
    assert "VERIFICATION IS DISABLED" in warnings[0].getMessage()
    assert SK not in caplog.text


def test_secure_config_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG, logger="ccfs.client")
    CcfsClient(CcfsConfig(BASE, AK, SK), transport=httpx.MockTransport(Server())).close()
    assert caplog.records == []


def test_missing_ca_bundle_fails_fast(tmp_path):
    with pytest.raises(FileNotFoundError):
        CcfsClient(CcfsConfig(BASE, AK, SK, ca_bundle=str(tmp_path / "nope.pem")))


# ---------------------------------------------------------------------------- redaction


def assert_no_secrets(text: str, server: Server) -> None:
    assert SK not in text.replace(AK, "")  # "testsk" must not appear; "testak" may
    assert "SECRETSIG" not in text
    assert "SECRETQ" not in text
    assert "AccessKeyId=" not in text
    for request in server.requests:
        auth = request.headers["authorization"]
        assert auth not in text
        assert auth.rsplit("/", 1)[1] not in text  # not even the bare signature


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda: json_reply(code="0300004", desc=f"bad {PRESIGNED}"), id="desc-with-url"),
        pytest.param(lambda: json_reply(code="0300004", desc="bad auth-v2/testak/x/host/abc"), id="desc-with-auth"),
        pytest.param(lambda: httpx.ReadError(f"reset while reading {PRESIGNED}"), id="transport-with-url"),
        pytest.param(lambda: httpx.Response(401), id="401"),
    ],
)
def test_error_messages_carry_no_secrets(make_client, caplog, reply):
    caplog.set_level(logging.DEBUG)
    client, server = make_client(reply(), reply(), reply(), reply())

    with pytest.raises(CcfsError) as info:
        client.download_bill_file(BILL, io.BytesIO())

    messages = []
    error: BaseException | None = info.value
    while isinstance(error, CcfsError):
        messages.append(str(error))
        error = error.__cause__
    assert "downloadBillFile" in messages[0]
    assert_no_secrets("\n".join(messages), server)
    assert_no_secrets(caplog.text, server)


# ---------------------------------------------------------------------------- pytest-httpx (default transport)


def test_with_pytest_httpx_default_transport(httpx_mock: HTTPXMock, sleeps):
    url = f"{BASE}/CCFS/resource/ccfs/downloadRecordFile"
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=url, method="POST")
    httpx_mock.add_response(
        url=url,
        method="POST",
        headers={"Content-Type": "audio/wav"},
        stream=IteratorStream([WAV[:10], WAV[10:]]),
    )
    sink = io.BytesIO()
    with CcfsClient(CcfsConfig(BASE, AK, SK), sleep=sleeps.append, clock=lambda: NOW) as client:
        assert client.download_record_file("/10/1/record/1.wav", sink) == len(WAV)

    assert sink.getvalue() == WAV
    requests = httpx_mock.get_requests()
    assert len(requests) == 2
    for request in requests:
        assert_signed(request, "downloadRecordFile")
    assert len(sleeps) == 1


def test_with_pytest_httpx_json_error(httpx_mock: HTTPXMock, sleeps):
    httpx_mock.add_response(method="POST", json={"resultCode": "0300012", "resultDesc": "no data", "resultData": ""})
    sink = io.BytesIO()
    with CcfsClient(CcfsConfig(BASE, AK, SK), sleep=sleeps.append) as client, pytest.raises(CcfsNotFound):
        client.download_bill_file(BILL, sink)
    assert sink.getvalue() == b""
    assert sleeps == []


# ---------------------------------------------------------------------------- real TLS + sockets


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, ssl.SSLContext]:
    ca = trustme.CA()
    ca_pem = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    return ca, ca_pem, server_ctx


@pytest.fixture
def https_server(tls):
    """A real HTTPS server answering scripted (status, headers, body, declared_length) replies."""
    _, _, server_ctx = tls
    script: list[tuple[int, dict[str, str], bytes, int | None]] = []
    received: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers.items()), body))
            status, headers, payload, declared = script.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(declared if declared is not None else len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if declared is not None:  # promised more than sent: drop the connection
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", script, received
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_real_tls_with_ca_bundle_and_content_length_shortfall(tls, https_server, sleeps):
    _, ca_pem, _ = tls
    base, script, received = https_server
    script += [
        (200, {"Content-Type": OCTET_CT}, WAV[:20], len(WAV)),  # body ends early
        (200, {"Content-Type": OCTET_CT}, WAV, None),
    ]
    sink = io.BytesIO()
    with CcfsClient(CcfsConfig(base, AK, SK, ca_bundle=str(ca_pem)), sleep=sleeps.append) as client:
        assert client.download_record_file("/a.wav", sink) == len(WAV)

    assert sink.getvalue() == WAV
    assert len(received) == 2
    assert len(sleeps) == 1
    for path, headers, body in received:
        assert path == "/CCFS/resource/ccfs/downloadRecordFile"
        assert headers["Host"] == base.removeprefix("https://")
        lowered = {k.lower(): v for k, v in headers.items()}
        assert verify(lowered["authorization"], "POST", path, lowered, body, lambda a: SK) == AK


def test_real_tls_untrusted_certificate_is_not_retried(https_server, sleeps):
    base, _, received = https_server
    with (
        CcfsClient(CcfsConfig(base, AK, SK), sleep=sleeps.append) as client,
        pytest.raises(CcfsPermanentError, match="certificate") as info,
    ):
        client.query_bill_data(BEGIN, END, callback_url="https://cb/x")
    assert not info.value.retryable
    assert sleeps == []
    assert received == []


def test_real_tls_insecure_flag_skips_verification(https_server):
    base, script, _ = https_server
    script.append((200, {"Content-Type": JSON_CT}, compact({"resultCode": "0", "resultData": {"url": URL_A}}), None))
    with CcfsClient(CcfsConfig(base, AK, SK, insecure=True)) as client:
        assert client.get_record_file_urls("1-2", BEGIN, END) == [URL_A]
