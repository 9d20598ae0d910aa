"""The sample events in events/ stay valid for the code that consumes them (sam local invoke -e ...).

Covers events/schedule.json, events/backfill_sqs.json and events/callback_api.json.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ccfs.auth import verify
from ccfs.models import BillCallback
from exporter.config import Settings
from exporter.requesting import parse_backfill

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _is_sqs(event: dict[str, Any]) -> bool:
    return all(r.get("eventSource") == "aws:sqs" for r in event.get("Records", [])) and bool(event.get("Records"))


@pytest.fixture
def settings() -> Settings:
    return Settings.model_validate(
        {
            "ccfs_base_url": "https://ccfs.test:28443",
            "ccfs_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:aicc/ccfs",
            "jobs_table": "aicc-jobs",
            "tenant_account_ids": "acct001",
        }
    )


def test_schedule_event_is_what_the_templates_schedule_delivers() -> None:
    """EventBridge Scheduler hands the function its target's Input as is: the template's schedule
    Input, not an EventBridge rule's "Scheduled Event" envelope."""
    from local.stack.sample_events import schedule_input

    event = load("schedule.json")
    assert event == schedule_input() == {"source": "aws.scheduler"}
    assert "Records" not in event  # request_export treats it as a tick, not as a batch


def test_backfill_event_is_an_sqs_batch_with_a_valid_backfill(settings: Settings) -> None:
    event = load("backfill_sqs.json")
    assert _is_sqs(event)
    (record,) = event["Records"]
    assert record["messageId"] and record["receiptHandle"]
    backfill = parse_backfill(record["body"], settings)
    assert (backfill.tenant, backfill.data_type) == ("acct001", "call_record")
    assert (backfill.end - backfill.begin).days == 3  # four days: two windows


def test_callback_event_is_a_rest_proxy_event_for_the_vendor_example() -> None:
    event = load("callback_api.json")
    assert event["httpMethod"] == "POST" and event["resource"] == event["path"] == "/ccfs/callback"
    assert event["requestContext"]["path"] == "/v1/ccfs/callback"  # stage included, as CC-FS addressed it
    assert event["requestContext"]["stage"] == "v1"
    assert event["isBase64Encoded"] is False
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert headers["content-type"] == "application/json;charset=UTF-8"
    assert headers["content-length"] == str(len(event["body"].encode()))
    assert {k.lower(): v[0] for k, v in event["multiValueHeaders"].items()} == headers
    body = BillCallback.model_validate_json(event["body"]).msgBody
    assert body.responseId == "9239cb50a8384bb0ab503441bf089446"
    assert body.billFileName == "20180702_9239cb50a8384bb0ab503441bf089446.zip"
    assert body.accountId is None  # sent as "" like the vendor's example


def test_callback_event_is_signed_with_the_demo_credentials_at_its_own_time() -> None:
    event = load("callback_api.json")
    authorization = event["headers"]["Authorization"]
    signed_at = datetime.fromisoformat(authorization.split("/")[2])
    ak = verify(
        authorization,
        "POST",
        event["requestContext"]["path"],
        list(event["headers"].items()),
        event["body"],
        secret_for={"demo-ak": "demo-sk"}.get,
        now=signed_at,
    )
    assert ak == "demo-ak"
    assert authorization.split("/")[3] == "content-length;content-type;host"
