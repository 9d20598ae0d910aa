"""callback: every rejection of the issue's bad-input table, the happy paths and log hygiene.

Events are built from events/callback_api.json and re-signed with the current (fake) time, since
the signature's timestamp must be within ±900 s of the receiver's clock.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from exporter.jobs.items import NewJob, WindowClaim
from exporter.jobs.keys import window_key
from exporter.planner import Window
from tests.unit.callback_helpers import (  # noqa: F401  (_shared_botocore_loader: an autouse fixture)
    BAD_INPUTS,
    NAME,
    NOW,
    RID,
    Harness,
    _body,
    _set_header,
    _shared_botocore_loader,
    base_event,
    emitted_metrics,
    make_event,
    refresh_signature,
)


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
