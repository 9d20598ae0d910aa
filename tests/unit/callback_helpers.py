"""The callback handler's events and harness, for the tests that drive it.

Events are built from events/callback_api.json and re-signed with the pinned time, since the
signature's timestamp must be within ±900 s of the receiver's clock."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
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
from exporter.jobs.keys import job_key
from exporter.planner import Window
from tests.conftest import emf_totals, sqs_messages

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


def emitted_metrics(output: str) -> dict[str, float]:
    return emf_totals(output)


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
