"""The callback as API Gateway really delivers it (issue 11 §1), built by the local front's event
builder (``local.stack.processes.events.api_gateway_event``): ``Host`` is the API's domain — the execute-api
name, or a custom domain — no ``Content-Length``, and ``requestContext.path`` is the path the caller
used (stage included on execute-api; the base path on a custom domain). CC-FS signs the callback URL
it was given, host and path as it sent them; the callback verifies over exactly those."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from ccfs.auth import sign
from local.stack.processes.events import api_gateway_event
from tests.unit.callback_helpers import NOW, RID, VENDOR_BODY

EXECUTE_API = "https://a1b2c3d4e5.execute-api.ap-southeast-1.amazonaws.com/v1/ccfs/callback"
CUSTOM_DOMAIN = "https://callbacks.example.com/aicc/ccfs/callback"  # base path "aicc" -> stage v1


def delivered(callback_url: str, signed_for: str | None = None) -> dict[str, Any]:
    """What API Gateway hands the function for CC-FS's POST to ``callback_url``, signed by CC-FS
    over ``signed_for`` (default: the same URL) with content-length, content-type and host."""
    body = VENDOR_BODY.encode()
    sent, signed = urlsplit(callback_url), urlsplit(signed_for or callback_url)
    headers = {
        "Host": signed.netloc,
        "Content-Type": "application/json;charset=UTF-8",
        "Content-Length": str(len(body)),
    }
    auth = sign("demo-ak", "demo-sk", "POST", signed.path, headers, body, timestamp=NOW - timedelta(seconds=5))
    event = api_gateway_event(
        method="POST",
        raw_path=sent.path,
        resource="/ccfs/callback",
        stage="v1",
        headers=[("Host", sent.netloc), *((k, v) for k, v in headers.items() if k != "Host"), ("Authorization", auth)],
        query={},
        body=body,
        source_ip="203.0.113.7",
        host=sent.netloc,
        api_id="a1b2c3d4e5",
    )
    event["path"] = "/ccfs/callback"  # the resource path, whatever the base path or stage
    return event


@pytest.mark.parametrize("url", [EXECUTE_API, CUSTOM_DOMAIN], ids=["execute-api", "custom-domain"])
def test_callback_signed_for_the_url_cc_fs_was_given_is_accepted(harness, url):
    harness.put_job(RID)
    event = delivered(url)
    assert "Content-Length" not in event["headers"] and event["headers"]["Host"] == urlsplit(url).netloc
    status, body = harness.call(event)
    assert (status, body["resultCode"]) == (200, "0")
    assert [bill["responseId"] for bill in harness.bills()] == [RID]


@pytest.mark.parametrize(
    "signed_for",
    [
        "https://callbacks.example.com/v1/ccfs/callback",  # the stage instead of the base path
        "https://other.example.com/aicc/ccfs/callback",  # another host
    ],
)
def test_callback_signed_for_another_url_is_rejected(harness, signed_for):
    harness.put_job(RID)
    status, body = harness.call(delivered(CUSTOM_DOMAIN, signed_for))
    assert (status, body["resultCode"]) == (401, "401")
    assert harness.bills() == []
