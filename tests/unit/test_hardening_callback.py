"""callback hardening (issue 6): every bad input refused cleanly, with *nothing* changed anywhere.

``tests/unit/test_callback.py`` holds the issue's bad-input table and checks, per row, the status,
the jobs table and the BillQueue. This file closes what that table leaves open:

* every row of that table (imported, not copied) plus the near-valid rows below is checked against
  a snapshot of the *whole* AWS state the function could touch: both DynamoDB tables, every queue
  and DLQ (visible, in flight and delayed, read without consuming), the bucket, the secret; and a
  botocore hook proves that not one mutating AWS call was even attempted;
* near-valid requests the table does not have (one detail off a correctly signed request);
* the edges of the accepted range (skew window, 16 KiB) on the accepted side.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import botocore.client
import pytest

from exporter.aws import client
from tests.unit.callback_helpers import (  # noqa: F401  (_shared_botocore_loader: an autouse fixture)
    BAD_INPUTS,
    NOW,
    RID,
    STAGE_PATH,
    VENDOR_BODY,
    Harness,
    _body,
    _set_header,
    _shared_botocore_loader,
    emitted_metrics,
    make_event,
    refresh_signature,
)

# Read-only AWS operations the callback may perform on a rejection path (none, in fact: the
# secret is fetched only after the cheap checks pass, and it is a read).
READ_ONLY = {"GetSecretValue", "GetParameter", "GetItem", "Query", "Scan", "DescribeTable"}


class AwsCalls:
    """Every AWS API call made while armed, as ``(service, operation)``."""

    def __init__(self) -> None:
        self.armed = False
        self.calls: list[tuple[str, str]] = []

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[1] not in READ_ONLY]


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    recorder = AwsCalls()
    original = botocore.client.BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if recorder.armed:
            recorder.calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return recorder


def aws_state(names: Any) -> dict[str, Any]:
    """Everything the callback could have changed, read without changing it (no ReceiveMessage)."""
    ddb, sqs, s3 = client("dynamodb"), client("sqs"), client("s3")
    state: dict[str, Any] = {}
    for table in (names.jobs_table, names.idempotency_table):
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
        state[table] = sorted(json.dumps(i, sort_keys=True) for i in items)
    for attr in ("request", "bill", "recording"):
        for url in (getattr(names, f"{attr}_queue_url"), getattr(names, f"{attr}_dlq_url")):
            got = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            state[url] = got
    state["s3"] = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=names.bucket).get("Contents", []))
    secret = client("secretsmanager").describe_secret(SecretId=names.secret_arn)
    state["secret"] = sorted(secret.get("VersionIdsToStages", {}))
    return state


# ---------------------------------------------------------------------------- near-valid rows


def _mutated(mutate: Callable[[dict[str, Any]], None], *, resign: bool = False) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        event = make_event()
        mutate(event)
        return refresh_signature(event) if resign else event

    return build


def _auth(event: dict[str, Any]) -> str:
    return next(v for k, v in event["headers"].items() if k.lower() == "authorization")


def _replace_auth(change: Callable[[list[str]], list[str]]) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        _set_header(event, "Authorization", "/".join(change(_auth(event).split("/"))))

    return mutate


def _set(part: int, value: str) -> Callable[[list[str]], list[str]]:
    def change(parts: list[str]) -> list[str]:
        parts[part] = value
        return parts

    return change


def _query_after_signing(event: dict[str, Any]) -> None:
    event["queryStringParameters"] = {"x": "1"}
    event["multiValueQueryStringParameters"] = {"x": ["1"]}


def _query_only_at_signing() -> dict[str, Any]:
    from ccfs.auth import sign

    event = make_event()
    headers = {k: v for k, v in event["headers"].items() if k.lower() in ("content-length", "content-type", "host")}
    auth = sign("demo-ak", "demo-sk", "POST", STAGE_PATH, headers, event["body"], timestamp=NOW, query={"x": "1"})
    _set_header(event, "Authorization", auth)
    return event


def _host_changed_after_signing(event: dict[str, Any]) -> None:
    _set_header(event, "Host", "attacker.example")


def _signed_header_dropped() -> dict[str, Any]:
    event = make_event(signed=("content-length", "content-type", "host", "user-agent"))
    _set_header(event, "User-Agent", None)
    return event


def _base64_flag_flipped(event: dict[str, Any]) -> None:
    event["isBase64Encoded"] = True  # the JSON text is not base64: 400 before anything else


def _base64_of_the_signed_body_but_flag_missing() -> dict[str, Any]:
    event = make_event(base64_body=True)
    event["isBase64Encoded"] = False  # the base64 text is now "the body": not what was signed
    return event


def _stage_missing_from_request_context(event: dict[str, Any]) -> None:
    event["requestContext"]["path"] = "/ccfs/callback"  # signed over /v1/ccfs/callback


def _lone_surrogate_query(event: dict[str, Any]) -> None:
    event["queryStringParameters"] = {"q": "\udfff"}
    event["multiValueQueryStringParameters"] = {"q": ["\udfff"]}


SIG = (401, "signature rejected")

NEAR_VALID: list[tuple[str, Callable[[], dict[str, Any]], int, str]] = [
    ("empty Authorization", _mutated(lambda e: _set_header(e, "Authorization", "")), *SIG),
    ("scheme word before the value", _mutated(lambda e: _set_header(e, "Authorization", "auth-v2 " + _auth(e))), *SIG),
    (
        "Authorization with a trailing newline",
        _mutated(lambda e: _set_header(e, "Authorization", _auth(e) + "\n")),
        *SIG,
    ),
    ("AUTH-V2 in upper case", _mutated(_replace_auth(_set(0, "AUTH-V2"))), *SIG),
    ("signature in upper-case hex", _mutated(_replace_auth(lambda p: [*p[:4], p[4].upper()])), *SIG),
    ("signature one hex digit short", _mutated(_replace_auth(lambda p: [*p[:4], p[4][:-1]])), *SIG),
    (
        "signature one digit changed",
        _mutated(_replace_auth(lambda p: [*p[:4], p[4][:-1] + "0f"[p[4][-1] == "0"]])),
        *SIG,
    ),
    ("signed headers not sorted", _mutated(_replace_auth(_set(3, "host;content-type;content-length"))), *SIG),
    ("signed headers repeated", _mutated(_replace_auth(_set(3, "content-length;host;host"))), *SIG),
    ("signed header names in upper case", _mutated(_replace_auth(_set(3, "Content-Length;Content-Type;Host"))), *SIG),
    ("timestamp that is no date", _mutated(_replace_auth(_set(2, "2026-13-45T10:00:00Z"))), *SIG),
    ("timestamp without Z", _mutated(_replace_auth(_set(2, "2026-11-21T10:00:00"))), *SIG),
    ("timestamp one second past the skew", lambda: make_event(now=NOW - timedelta(seconds=901)), *SIG),
    ("ak with a space", _mutated(_replace_auth(_set(1, "demo ak"))), *SIG),
    ("ak of another case", _mutated(_replace_auth(_set(1, "DEMO-AK"))), *SIG),
    ("query string added after signing", _mutated(_query_after_signing), *SIG),
    ("signed with a query string that was not sent", _query_only_at_signing, *SIG),
    ("Host changed after signing", _mutated(_host_changed_after_signing), *SIG),
    ("a signed header not received", _signed_header_dropped, *SIG),
    ("stage missing from the path received", _mutated(_stage_missing_from_request_context), *SIG),
    ("base64 text sent as the body", _base64_of_the_signed_body_but_flag_missing, *SIG),
    (
        "signed over another body, same length",
        lambda: make_event(signed_body=VENDOR_BODY.replace("2.0", "2.1").encode()),
        *SIG,
    ),
    # A JSON event can carry a lone surrogate; it has no UTF-8 form, so nobody can have signed it.
    # Found by tests/unit/test_fuzz_callback.py: these raised UnicodeEncodeError (HTTP 502) before.
    ("lone surrogate in a signed header", _mutated(lambda e: _set_header(e, "Host", "api\ud800")), *SIG),
    ("lone surrogate in the path", _mutated(lambda e: e["requestContext"].update(path=STAGE_PATH + "\udfff")), *SIG),
    ("lone surrogate in the query", _mutated(_lone_surrogate_query), *SIG),
    ("body not valid base64", _mutated(_base64_flag_flipped), 400, "base64"),
    ("no Content-Type", _mutated(lambda e: _set_header(e, "Content-Type", None), resign=True), 415, "Content-Type"),
    ("application/jsonx", lambda: make_event(content_type="application/jsonx"), 415, "Content-Type"),
    (
        "application/json with charset=latin1",
        lambda: make_event(content_type="application/json;charset=latin1"),
        415,
        "UTF-8",
    ),
    ("DELETE", lambda: make_event(method="DELETE"), 405, "method not allowed"),
    ("PATCH", lambda: make_event(method="PATCH"), 405, "method not allowed"),
    ("OPTIONS", lambda: make_event(method="OPTIONS"), 405, "method not allowed"),
    ("empty body, correctly signed", lambda: make_event(""), 400, "not JSON"),
    ("not UTF-8, correctly signed", lambda: make_event(b'{"a":"\xc3\x28"}', base64_body=True), 400, "not JSON"),
    ("JSON null, correctly signed", lambda: make_event("null"), 400, "invalid callback"),
    ("deeply nested JSON, correctly signed", lambda: make_event("[" * 4000 + "]" * 4000), 400, "invalid callback"),
    ("5000-digit number, correctly signed", lambda: make_event('{"request":' + "9" * 5000 + "}"), 400, "not JSON"),
    ("accountId over 20 characters", lambda: make_event(_body(accountId="a" * 21)), 400, "accountId"),
    ("responseId of 31 hex digits", lambda: make_event(_body(responseId=RID[:-1])), 400, "responseId"),
    ("billFileName not .zip", lambda: make_event(_body(billFileName=f"20180702_{RID}.zap")), 400, "billFileName"),
    ("msgBody missing", lambda: make_event('{"request":{"version":"2.0"}}'), 400, "msgBody"),
    ("unknown path", _mutated(lambda e: e.update(path="/other", resource="/other")), 404, "not found"),
]

ALL_ROWS = BAD_INPUTS + NEAR_VALID


@pytest.mark.parametrize(("case", "build", "status", "desc"), ALL_ROWS, ids=[row[0] for row in ALL_ROWS])
def test_rejection_changes_nothing_anywhere(
    harness: Harness,
    aws: Any,
    aws_calls: AwsCalls,
    capsys: pytest.CaptureFixture[str],
    case: str,
    build: Callable[[], dict[str, Any]],
    status: int,
    desc: str,
) -> None:
    harness.put_job()
    before = aws_state(aws)
    event = build()
    capsys.readouterr()

    aws_calls.armed = True
    code, body = harness.call(event)
    aws_calls.armed = False

    assert code == status, (case, body)
    assert body["resultCode"] == str(status) and desc in body["resultDesc"], body
    assert aws_calls.writes() == [], f"{case}: a rejected request made AWS writes"
    assert aws_state(aws) == before, f"{case}: state changed"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("CallbackRejected") == 1, metrics
    assert metrics.get("CallbackSignatureRejected", 0) == (1 if status == 401 else 0)
    assert not {"CallbacksAccepted", "CallbackDuplicate", "CallbackUnsolicited"} & set(metrics)
    if status in (404, 405, 413, 415):  # refused before the signature: not even the secret was read
        assert aws_calls.calls == []


def test_checks_that_need_no_secret_run_before_the_secret_is_read(harness: Harness, aws_calls: AwsCalls) -> None:
    """Method, size and media type are refused without touching Secrets Manager (cheapest first)."""
    harness.put_job()
    for event in (make_event(method="GET"), make_event(content_type="text/plain"), make_event("x" * 17_000)):
        aws_calls.armed = True
        assert harness.call(event)[0] in (405, 413, 415)
        aws_calls.armed = False
    assert aws_calls.calls == []


# ---------------------------------------------------------------------------- the accepted edges


@pytest.mark.parametrize("offset", [-900, 900])
def test_timestamp_exactly_at_the_skew_limit_is_accepted(harness: Harness, offset: int) -> None:
    harness.put_job()
    assert harness.call(make_event(now=NOW + timedelta(seconds=offset)))[0] == 200
    assert len(harness.bills()) == 1


def _padded(size: int) -> str:
    body = json.loads(_body())
    body["pad"] = ""
    base = len(json.dumps(body, separators=(",", ":")))
    body["pad"] = "x" * (size - base)
    text = json.dumps(body, separators=(",", ":"))
    assert len(text.encode()) == size
    return text


@pytest.mark.parametrize("base64_body", [False, True])
def test_body_of_exactly_16_kib_is_accepted_one_more_byte_is_413(
    harness: Harness, aws: Any, aws_calls: AwsCalls, base64_body: bool
) -> None:
    harness.put_job()
    assert harness.call(make_event(_padded(16 * 1024), base64_body=base64_body))[0] == 200
    assert len(harness.bills()) == 1
    before = aws_state(aws)
    aws_calls.armed = True
    assert harness.call(make_event(_padded(16 * 1024 + 1), base64_body=base64_body))[0] == 413
    aws_calls.armed = False
    assert aws_calls.calls == [] and aws_state(aws) == before


def test_signing_only_host_as_the_vendor_demo_does_is_accepted(harness: Harness) -> None:
    harness.put_job()
    assert harness.call(make_event(signed=("host",)))[0] == 200


def test_header_names_in_any_case_are_accepted(harness: Harness) -> None:
    harness.put_job()
    event = make_event()
    for name in list(event["headers"]):
        value = event["headers"].pop(name)
        event["headers"][name.lower() if name != "Host" else "HOST"] = value
    assert harness.call(event)[0] == 200


def test_base64_body_decodes_to_the_signed_bytes(harness: Harness) -> None:
    harness.put_job()
    event = make_event(base64_body=True)
    assert base64.b64decode(event["body"]).decode() == VENDOR_BODY
    assert harness.call(event)[0] == 200


def test_verify_calls_text_without_a_utf8_form_malformed() -> None:
    """ccfs.auth.verify (the callback's and the simulator's) rejects, rather than crashes on, a path,
    header value or query parameter holding a lone surrogate."""
    from ccfs.auth import SignatureError, sign, verify

    headers = {"host": "h", "content-type": "application/json"}
    value = sign("ak", "sk", "POST", "/p", headers, b"{}", timestamp=NOW)
    cases: list[tuple[str, dict[str, str], dict[str, str] | None]] = [
        ("/p\ud800", headers, None),
        ("/p", {**headers, "host": "h\udc80"}, None),
        ("/p", headers, {"k": "\ud800"}),
    ]
    for path, received, query in cases:
        with pytest.raises(SignatureError) as raised:
            verify(value, "POST", path, received, b"{}", lambda ak: "sk" if ak == "ak" else None, now=NOW, query=query)
        assert raised.value.reason == "malformed"
