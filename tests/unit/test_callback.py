"""callback: every rejection of the issue's bad-input table, the happy paths and log hygiene.

Events are built from events/callback_api.json and re-signed with the current (fake) time, since
the signature's timestamp must be within ±900 s of the receiver's clock.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from ccfs.auth import sign
from exporter.aws import resource
from exporter.jobs.items import NewJob, WindowClaim
from exporter.jobs.keys import job_key, window_key
from exporter.planner import Window
from tests.conftest import CurrentStdout, emf_totals, load_handler, sqs_messages

EVENT_FILE = Path(__file__).resolve().parents[2] / "events" / "callback_api.json"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
RID = "9239cb50a8384bb0ab503441bf089446"
NAME = f"20180702_{RID}.zip"
VENDOR_BODY = json.dumps(
    {"request": {"version": "2.0"}, "msgBody": {"responseId": RID, "billFileName": NAME, "accountId": ""}},
    separators=(",", ":"),
)
STAGE_PATH = "/v1/ccfs/callback"
SIGNED = ("content-length", "content-type", "host")

_LOADER = botocore.loaders.create_loader()


@pytest.fixture(autouse=True)
def _shared_botocore_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's fresh boto3 session would re-read botocore's JSON models: share one loader."""
    monkeypatch.setattr(botocore.session, "create_loader", lambda *args, **kwargs: _LOADER)


# ---------------------------------------------------------------------------- building events


def base_event() -> dict[str, Any]:
    return json.loads(EVENT_FILE.read_text())


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in [k for k in event["headers"] if k.lower() == name.lower()]:
        del event["headers"][key]
        event["multiValueHeaders"].pop(key, None)
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]


def refresh_signature(
    event: dict[str, Any],
    *,
    now: datetime = NOW,
    ak: str = "demo-ak",
    sk: str = "demo-sk",
    signed_method: str = "POST",
    signed_path: str = STAGE_PATH,
    signed: tuple[str, ...] = SIGNED,
    signed_body: bytes | None = None,
) -> dict[str, Any]:
    """Re-sign ``event`` in place over its own headers and body (or over the given overrides)."""
    raw = signed_body
    if raw is None:
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    headers = {k: v for k, v in event["headers"].items() if k.lower() in signed}
    _set_header(event, "Authorization", sign(ak, sk, signed_method, signed_path, headers, raw, timestamp=now))
    return event


def make_event(
    body: str | bytes = VENDOR_BODY,
    *,
    method: str = "POST",
    content_type: str = "application/json;charset=UTF-8",
    base64_body: bool = False,
    **sign_overrides: Any,
) -> dict[str, Any]:
    event = base_event()
    raw = body.encode() if isinstance(body, str) else body
    event["httpMethod"] = method
    event["requestContext"]["httpMethod"] = method
    event["isBase64Encoded"] = base64_body
    event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
    _set_header(event, "Content-Type", content_type)
    _set_header(event, "Content-Length", str(len(raw)))
    return refresh_signature(event, **sign_overrides)


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Harness:
    module: Any
    context: Any
    settings: Any
    bill_queue_url: str
    now: list[datetime] = field(default_factory=lambda: [NOW])

    def call(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.module.lambda_handler(event, self.context)
        return response["statusCode"], json.loads(response["body"])

    def table(self) -> Any:
        return resource("dynamodb").Table(self.settings.jobs_table)

    def items(self) -> list[dict[str, Any]]:
        return sorted(self.table().scan(ConsistentRead=True)["Items"], key=lambda i: (i["pk"], i["sk"]))

    def job(self, rid: str = RID) -> dict[str, Any] | None:
        return self.table().get_item(Key=job_key(rid), ConsistentRead=True).get("Item")

    def bills(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in sqs_messages(self.bill_queue_url)]

    def put_job(self, rid: str = RID, tenant: str = "acct001", **changes: Any) -> None:
        claim = WindowClaim(
            tenant, Window.from_sk("2018-07-02 00:00:00|2018-07-02 00:59:59"), "call_record", None, "schedule"
        )
        item = NewJob(rid, claim, 1).item(NOW - timedelta(minutes=20), 365)
        item.update(changes)
        self.table().put_item(Item=item)


@pytest.fixture
def harness(aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Harness:
    from exporter.config import get_settings

    module = load_handler("callback")
    h = Harness(module, lambda_context, get_settings(), aws.bill_queue_url)
    monkeypatch.setattr(module, "utc_now", lambda: h.now[0])
    return h


@pytest.fixture
def logs_to_capsys(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Point the Powertools log handler (created at the first import, bound to the stdout of that
    moment) at the current stdout, so ``capsys`` sees the JSON log lines."""
    from exporter.aws import logger

    handler = logger.registered_handler
    previous = handler.stream  # type: ignore[attr-defined]
    handler.stream = CurrentStdout()  # type: ignore[attr-defined]
    yield
    handler.stream = previous  # type: ignore[attr-defined]


def emitted_metrics(output: str) -> dict[str, float]:
    return emf_totals(output)


# ---------------------------------------------------------------------------- the bad-input table


def _body(**msg: Any) -> str:
    body = {"responseId": RID, "billFileName": NAME, "accountId": ""}
    body.update(msg)
    return json.dumps({"request": {"version": "2.0"}, "msgBody": {k: v for k, v in body.items() if v is not None}})


def _with_auth(value: str | None) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        event = make_event()
        _set_header(event, "Authorization", value)
        return event

    return build


def _tampered() -> dict[str, Any]:
    event = make_event()
    event["body"] = event["body"].replace("20180702", "20180703")  # one byte changed after signing
    return event


def _wrong_content_length() -> dict[str, Any]:
    event = make_event()
    _set_header(event, "Content-Length", "999")
    return refresh_signature(event)


def _too_big() -> dict[str, Any]:
    body = _body(padding="x" * (16 * 1024))
    return make_event(body)


def _too_big_base64() -> dict[str, Any]:
    return make_event(_body(padding="x" * (16 * 1024)), base64_body=True)


OTHER_BODY = VENDOR_BODY.replace(RID, "0" * 32)
SIG = (401, "signature rejected")

BAD_INPUTS: list[tuple[str, Callable[[], dict[str, Any]], int, str]] = [
    ("no Authorization", _with_auth(None), *SIG),
    ("not auth-v2", _with_auth("Bearer abc.def.ghi"), *SIG),
    ("wrong number of parts", _with_auth(f"auth-v2/demo-ak/2026-11-21T10:00:00Z/host/{'a' * 64}/x"), *SIG),
    ("too few parts", _with_auth("auth-v2/demo-ak/2026-11-21T10:00:00Z/host"), *SIG),
    ("unknown ak", lambda: make_event(ak="other-ak"), *SIG),
    ("right ak, wrong sk", lambda: make_event(sk="not-the-sk"), *SIG),
    ("signature of another body", lambda: make_event(signed_body=OTHER_BODY.encode()), *SIG),
    ("timestamp older than the skew", lambda: make_event(now=NOW - timedelta(seconds=901)), *SIG),
    ("timestamp newer than the skew", lambda: make_event(now=NOW + timedelta(seconds=901)), *SIG),
    ("host not signed", lambda: make_event(signed=("content-length", "content-type")), *SIG),
    ("signed content-length is not the body length", _wrong_content_length, *SIG),
    ("body altered by one byte after signing", _tampered, *SIG),
    ("signed over the path without the stage", lambda: make_event(signed_path="/ccfs/callback"), *SIG),
    ("signed for another method", lambda: make_event(signed_method="PUT"), *SIG),
    ("not JSON", lambda: make_event("responseId=9239cb50"), 400, "not JSON"),
    ("JSON array", lambda: make_event("[]"), 400, "invalid callback: body"),
    ("msgBody is a string", lambda: make_event('{"request":{"version":"2.0"},"msgBody":"x"}'), 400, "msgBody"),
    ("missing responseId", lambda: make_event(_body(responseId=None)), 400, "msgBody.responseId"),
    ("missing billFileName", lambda: make_event(_body(billFileName=None)), 400, "msgBody.billFileName"),
    ("wrong version", lambda: make_event(_body().replace('"2.0"', '"1.0"')), 400, "request.version"),
    ("billFileName with /", lambda: make_event(_body(billFileName=f"2018/702_{RID}.zip")), 400, "billFileName"),
    ("billFileName with \\", lambda: make_event(_body(billFileName=f"20180702_{RID}\\.zip")), 400, "billFileName"),
    ("billFileName with ..", lambda: make_event(_body(billFileName=f"../20180702_{RID}.zip")), 400, "billFileName"),
    ("billFileName with NUL", lambda: make_event(_body(billFileName=f"20180702_{RID}\x00.zip")), 400, "billFileName"),
    ("billFileName over 49 chars", lambda: make_event(_body(billFileName=f"20180702_{'a' * 40}.zip")), 400, "49"),
    (
        "billFileName of another responseId",
        lambda: make_event(_body(billFileName=f"20180702_{'0' * 32}.zip")),
        400,
        "billFileName",
    ),
    ("billFileName with a bad date", lambda: make_event(_body(billFileName=f"20181302_{RID}.zip")), 400, "date"),
    (
        "responseId with a key separator",
        lambda: make_event(_body(responseId="zz#zz", billFileName="20180702_zzzz.zip")),
        400,
        "msgBody.responseId",
    ),
    ("body over 16 KiB", _too_big, 413, "body too large"),
    ("base64 body over 16 KiB", _too_big_base64, 413, "body too large"),
    ("GET", lambda: make_event(method="GET"), 405, "method not allowed"),
    ("PUT", lambda: make_event(method="PUT"), 405, "method not allowed"),
    ("text/plain", lambda: make_event(content_type="text/plain"), 415, "Content-Type"),
    ("JSON in another charset", lambda: make_event(content_type="application/json; charset=ISO-8859-1"), 415, "UTF-8"),
]


@pytest.mark.parametrize(("case", "build", "status", "desc"), BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_rejected_and_changes_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str], case: str, build: Any, status: int, desc: str
) -> None:
    harness.put_job()
    before = harness.items()
    event = build()

    code, body = harness.call(event)

    assert code == status, case
    assert body["resultCode"] == str(status) and desc in body["resultDesc"], body
    assert harness.items() == before  # nothing written
    assert harness.bills() == []  # nothing sent
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("CallbackRejected") == 1
    assert metrics.get("CallbackSignatureRejected", 0) == (1 if status == 401 else 0)
    assert "CallbacksAccepted" not in metrics
    raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    if status == 400:
        assert raw.decode(errors="replace") not in body["resultDesc"]  # the body is never echoed


# ---------------------------------------------------------------------------- accepted callbacks


@pytest.mark.parametrize(
    ("rid", "name"),
    [
        ("k3v9q2", "20180702_k3v9q2.zip"),  # short
        ("Ab-3_x.Y9-zQ", "20180702_Ab3_x.Y9zQ.zip"),  # mixed case and punctuation, dashes dropped
        ("Z" * 36, f"20180702_{'Z' * 36}.zip"),  # the longest a 49-character file name allows
    ],
)
@pytest.mark.parametrize("name_field", ["billFileName", "billName"])
def test_any_response_id_the_field_allows_is_accepted(harness: Harness, rid: str, name: str, name_field: str) -> None:
    harness.put_job(rid=rid)
    body = json.dumps({"request": {"version": "2.0"}, "msgBody": {"responseId": rid, name_field: name}})
    code, reply = harness.call(make_event(body))
    assert (code, reply["resultCode"]) == (200, "0")
    job = harness.job(rid)
    assert job is not None and job["job_status"] == "READY" and job["bill_file_name"] == name
    assert harness.bills() == [{"responseId": rid, "billFileName": name, "tenant": "acct001"}]


@pytest.mark.parametrize(
    ("rid", "name", "where"),
    [
        ("a/b", "20180702_ab.zip", "msgBody.responseId"),
        ("Z" * 37, f"20180702_{'Z' * 37}.zip", "msgBody.responseId"),
        ("ab", "20180702_ab cd.zip", "msgBody.billName: billFileName must be"),
    ],
)
def test_unusable_response_id_or_name_is_refused_with_the_reason(
    harness: Harness, rid: str, name: str, where: str
) -> None:
    before = harness.items()
    body = json.dumps({"request": {"version": "2.0"}, "msgBody": {"responseId": rid, "billName": name}})
    code, reply = harness.call(make_event(body))
    assert code == 400 and where in reply["resultDesc"], reply
    assert harness.items() == before and harness.bills() == []


def test_vendor_example_event_file_after_re_signing_is_accepted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.put_job()
    code, body = harness.call(refresh_signature(base_event()))
    assert (code, body) == (200, {"resultCode": "0", "resultDesc": "success"})
    job = harness.job()
    assert job is not None
    assert job["job_status"] == "READY" and job["bill_file_name"] == NAME and job["bill_enqueued"] is True
    assert job["callback_at"] == job["status_at"] == "2026-11-21T10:00:00Z"
    assert harness.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct001"}]
    assert emitted_metrics(capsys.readouterr().out) == {"CallbacksAccepted": 1}


def test_callback_as_api_gateway_delivers_it_without_content_length_is_accepted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """CC-FS signs content-length; API Gateway's REST proxy event does not carry the header."""
    harness.put_job()
    event = make_event()
    _set_header(event, "Content-Length", None)
    code, body = harness.call(event)
    assert (code, body) == (200, {"resultCode": "0", "resultDesc": "success"})
    assert harness.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct001"}]
    assert emitted_metrics(capsys.readouterr().out) == {"CallbacksAccepted": 1}


def test_the_event_file_as_shipped_is_too_old(harness: Harness) -> None:
    harness.put_job()
    assert harness.call(base_event())[0] == 401  # signed 2026-11-21T08:00:00Z, two hours before NOW


def test_replayed_callback_updates_once_and_sends_one_message(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.put_job(tenant="acct001", account_id="acct001")
    for minute in range(5):
        harness.now[0] = NOW + timedelta(minutes=10 * minute)  # CC-FS retries every 10 minutes
        code, body = harness.call(make_event(now=harness.now[0]))
        assert (code, body["resultCode"]) == (200, "0")
    job = harness.job()
    assert job is not None and job["status_at"] == "2026-11-21T10:00:00Z"  # written once
    assert harness.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct001", "accountId": "acct001"}]
    assert emitted_metrics(capsys.readouterr().out) == {"CallbacksAccepted": 1, "CallbackDuplicate": 4}


def test_unknown_response_id_is_recorded_unsolicited_without_a_download(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = harness.call(make_event(_body(accountId="acct001")))
    assert code == 200
    job = harness.job()
    assert job is not None
    assert job["job_status"] == "UNSOLICITED" and job["bill_file_name"] == NAME and job["tenant"] == "acct001"
    assert job["callback_tenants"] == {"acct001"}
    assert harness.bills() == []
    assert emitted_metrics(capsys.readouterr().out) == {"CallbackUnsolicited": 1}
    assert harness.call(make_event(_body(accountId="acct001")))[0] == 200  # replay: still nothing sent
    assert harness.bills() == []


def test_unknown_response_id_is_downloaded_when_unsolicited_callbacks_are_allowed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_UNSOLICITED", "true")
    from exporter.config import get_settings

    get_settings.cache_clear()
    assert harness.call(make_event())[0] == 200
    job = harness.job()
    assert job is not None and job["job_status"] == "READY" and job["bill_enqueued"] is True
    assert harness.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct001"}]


def test_base64_encoded_body_is_accepted(harness: Harness) -> None:
    harness.put_job()
    assert harness.call(make_event(base64_body=True))[0] == 200
    assert len(harness.bills()) == 1


def test_media_type_and_charset_are_case_insensitive(harness: Harness) -> None:
    harness.put_job()
    assert harness.call(make_event(content_type="Application/JSON; Charset=utf-8"))[0] == 200
    harness.put_job(rid="1" * 32)
    assert harness.call(make_event(_body(responseId="1" * 32, billFileName=f"20180702_{'1' * 32}.zip"),
                                   content_type="application/json"))[0] == 200  # fmt: skip


def test_failed_send_fails_the_invocation_and_the_retry_sends_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.put_job()

    def broken(message: dict[str, str]) -> None:
        raise ConnectionError("sqs unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(harness.module, "_send_bill", broken)
        with pytest.raises(ConnectionError):  # API Gateway answers 502: CC-FS retries; Errors alarm
            harness.call(make_event())
    job = harness.job()
    assert job is not None and job["job_status"] == "READY" and job["bill_enqueued"] is False
    assert harness.bills() == []

    assert harness.call(make_event())[0] == 200  # CC-FS calls back again
    assert harness.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct001"}]
    job = harness.job()
    assert job is not None and job["bill_enqueued"] is True


def test_late_callback_for_a_superseded_job_is_remembered_without_a_download(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.put_job(job_status="SUPERSEDED", superseded_by="f" * 32)
    assert harness.call(make_event())[0] == 200
    job = harness.job()
    assert job is not None and job["job_status"] == "SUPERSEDED"
    assert job["callback_at"] == "2026-11-21T10:00:00Z" and job["bill_file_name"] == NAME
    assert harness.bills() == []
    assert emitted_metrics(capsys.readouterr().out) == {"CallbackDuplicate": 1}


def test_late_callback_revives_a_job_that_failed_for_want_of_one(harness: Harness) -> None:
    harness.put_job(job_status="FAILED", error="no callback after 3 attempts")
    window = {
        **window_key("acct001", "2018-07-02 00:00:00", "2018-07-02 00:59:59"),
        "response_id": RID,
        "job_status": "FAILED",
        "status_at": "2026-11-21T09:00:00Z",
        "error": "no callback after 3 attempts",
    }
    harness.table().put_item(Item=window)
    assert harness.call(make_event())[0] == 200
    job = harness.job()
    assert job is not None and job["job_status"] == "READY" and job["bill_enqueued"] is True
    assert len(harness.bills()) == 1
    revived = harness.table().get_item(Key={"pk": window["pk"], "sk": window["sk"]})["Item"]
    assert "job_status" not in revived and "error" not in revived


@pytest.mark.parametrize("status", ["DOWNLOADING", "COMPLETED"])
def test_callback_for_a_job_in_progress_or_done_is_a_duplicate(harness: Harness, status: str) -> None:
    harness.put_job(job_status=status, bill_enqueued=True, bill_file_name=NAME, callback_at="2026-11-21T09:00:00Z")
    before = harness.items()
    assert harness.call(make_event())[0] == 200
    assert harness.items() == before
    assert harness.bills() == []


def test_unknown_path_is_404_and_counted(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    event = make_event()
    event["path"] = event["resource"] = "/other"
    assert harness.call(event)[0] == 404
    assert emitted_metrics(capsys.readouterr().out)["CallbackRejected"] == 1


# ---------------------------------------------------------------------------- log hygiene


def test_no_secret_authorization_or_body_reaches_the_logs(
    harness: Harness, logs_to_capsys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.put_job()
    events = [
        make_event(),
        make_event(sk="not-the-sk"),
        make_event("not json at all"),
        make_event(_body(accountId="x" * 21)),
    ]
    for event in events:
        harness.call(event)
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert any('"callback applied"' in line for line in lines)  # the capture does see the logs
    assert any('"reason":"signature_mismatch"' in line.replace(" ", "") for line in lines)
    for event in events:
        authorization = event["headers"]["Authorization"]
        for line in lines:
            assert authorization not in line
            assert authorization.rsplit("/", 1)[1] not in line  # the signature itself
            assert event["body"] not in line
    for line in lines:
        assert "demo-sk" not in line and "not-the-sk" not in line
        assert "not json at all" not in line and "x" * 21 not in line


def test_event_copy_is_independent() -> None:
    event = base_event()
    clone = copy.deepcopy(event)
    refresh_signature(clone)
    assert clone["headers"]["Authorization"] != event["headers"]["Authorization"]


# ---------------------------------------------------------------------------- tenants are separate accounts

TWO_TENANTS = {
    "tenants": {
        "acct001": {"ak": "ak-one", "sk": "sk-one"},
        "acct002": {"ak": "ak-two", "sk": "sk-two", "timezone": "Europe/Berlin"},
    }
}


@pytest.fixture
def two_tenants(harness: Harness, aws: Any, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """The per-tenant secret: acct001 and acct002 are separate developer accounts."""
    import boto3

    from exporter.config import get_settings
    from tests.conftest import reset_process_caches

    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString=json.dumps(TWO_TENANTS))
    monkeypatch.setenv("TENANT_ACCOUNT_IDS", "acct001,acct002")
    reset_process_caches()
    harness.settings = get_settings()
    return harness


def test_each_tenants_callback_is_verified_with_its_own_key(two_tenants: Harness) -> None:
    two_tenants.put_job(rid=RID, tenant="acct002", account_id="acct002")
    code, _ = two_tenants.call(make_event(_body(accountId="acct002"), ak="ak-two", sk="sk-two"))
    assert code == 200
    assert two_tenants.bills() == [
        {"responseId": RID, "billFileName": NAME, "tenant": "acct002", "accountId": "acct002"}
    ]
    # the old single-key secret is gone: its ak is unknown now
    assert two_tenants.call(make_event(_body(), ak="demo-ak", sk="demo-sk"))[0] == 401


@pytest.mark.parametrize("account_id", ["", "acct001", "acct002"])
def test_a_callback_signed_by_tenant_a_for_tenant_bs_job_is_refused(
    two_tenants: Harness, capsys: pytest.CaptureFixture[str], logs_to_capsys: None, account_id: str
) -> None:
    two_tenants.put_job(rid=RID, tenant="acct002", account_id="acct002")
    before = two_tenants.items()
    code, reply = two_tenants.call(make_event(_body(accountId=account_id), ak="ak-one", sk="sk-one"))
    assert (code, reply["resultCode"]) == (403, "403")
    assert two_tenants.items() == before  # nothing written
    assert two_tenants.bills() == []  # nothing queued
    out = capsys.readouterr().out
    assert emitted_metrics(out) == {"CallbackRejected": 1, "CallbackTenantMismatch": 1}
    assert '"reason":"tenant_mismatch"' in out and '"signedFor":["acct001"]' in out
    assert "sk-one" not in out and "Authorization" not in out


def test_a_callback_naming_another_tenants_account_is_refused_before_any_lookup(two_tenants: Harness) -> None:
    # unknown responseId, accountId of tenant B, signed by tenant A: not even an UNSOLICITED item
    code, _ = two_tenants.call(make_event(_body(accountId="acct002"), ak="ak-one", sk="sk-one"))
    assert code == 403
    assert two_tenants.items() == []
    assert two_tenants.bills() == []


def test_an_unsolicited_callback_is_attributed_to_the_signing_tenant(
    two_tenants: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.config import get_settings

    monkeypatch.setenv("ALLOW_UNSOLICITED", "true")
    get_settings.cache_clear()
    assert two_tenants.call(make_event(_body(accountId=""), ak="ak-two", sk="sk-two"))[0] == 200
    job = two_tenants.job()
    assert job is not None and job["tenant"] == "acct002" and job["callback_tenants"] == {"acct002"}
    assert two_tenants.bills() == [{"responseId": RID, "billFileName": NAME, "tenant": "acct002"}]


def test_an_early_callback_of_tenant_a_is_not_adopted_by_tenant_bs_window(two_tenants: Harness) -> None:
    """The callback came before the request was recorded (UNSOLICITED), but signed by another
    tenant: recording tenant B's request must not take it as B's callback."""
    from exporter.jobs.store import JobStore

    assert two_tenants.call(make_event(_body(), ak="ak-one", sk="sk-one"))[0] == 200
    store = JobStore(two_tenants.settings.jobs_table)
    claim = WindowClaim(
        "acct002", Window.from_sk("2018-07-02 00:00:00|2018-07-02 00:59:59"), "call_record", "acct002", "schedule"
    )
    assert store.claim_backfill_window(claim, NOW)
    assert not store.link_existing_job(NewJob(RID, claim, 1), NOW)
    job = two_tenants.job()
    assert job is not None and job["job_status"] == "UNSOLICITED" and job["tenant"] == "acct001"
    assert "window_pk" not in job
    mine = WindowClaim(
        "acct001", Window.from_sk("2018-07-02 00:00:00|2018-07-02 00:59:59"), "call_record", "acct001", "schedule"
    )
    assert store.claim_backfill_window(mine, NOW)
    assert store.link_existing_job(NewJob(RID, mine, 1), NOW)  # the signing tenant's own window adopts it
