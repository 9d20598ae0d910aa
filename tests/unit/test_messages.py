"""One contract per queue (exporter.messages): every producer's message parses with its consumer's
model, the wire format is what was queued before the models were shared, and the download function
routes a record by its queue and that queue's model, not by the fields its body happens to have."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from exporter.bill_fanout import Recordings, add_recording, recording_messages
from exporter.callbacks import bill_message
from exporter.config import ConfigError, Settings, import_setting
from exporter.jobs.items import Job
from exporter.messages import (
    BillMessage,
    DownloadQueues,
    MessageKind,
    RecordingMessage,
    RefusedMessage,
    UnroutableMessage,
    message_body,
    route,
)
from exporter.recordings import RecordingCopier
from exporter.requesting import parse_backfill
from exporter.tally import Tally
from tests.conftest import load_handler
from tests.fakes.queues import FakeQueue

ROOT = Path(__file__).resolve().parents[2]
RID = "9239cb50a8384bb0ab503441bf089446"
BILL = f"20180702_{RID}.zip"
ARN = "arn:aws:sqs:us-east-1:123456789012:"
QUEUES = DownloadQueues(
    bill=f"{ARN}aicc-export-BillQueue-1", recording=f"{ARN}aicc-export-RecordingQueue-1", dead_recording="dlq-1"
)
SETTINGS = Settings.model_validate(
    {"ccfs_base_url": "https://ccfs.test", "ccfs_secret_arn": "arn:secret", "jobs_table": "jobs"}
)


# ---------------------------------------------------------------------------- producers -> consumers


@pytest.mark.parametrize("account", ["acct001", None, ""])
def test_the_callbacks_bill_message_is_what_the_download_reads(account: str | None) -> None:
    job = Job(response_id=RID, bill_file_name=BILL, tenant="acct001", account_id=account)
    body = message_body(bill_message(job))
    expected = f'{{"responseId":"{RID}","billFileName":"{BILL}","tenant":"acct001"'
    assert body == expected + (f',"accountId":"{account}"}}' if account else "}")  # as json.dumps(..., (",", ":"))
    routed = route(QUEUES.bill, body, QUEUES)
    assert routed.kind is MessageKind.BILL and routed.message == bill_message(job)


def test_a_backfill_continuation_is_what_request_export_reads() -> None:
    body = '{"accountId":"acct001","beginTime":"2026-11-01 00:00:00","endTime":"2026-11-10 23:59:59","dataType":"call"}'
    one_tenant = SETTINGS.model_copy(update={"tenant_account_ids": ["acct001"]})
    backfill = parse_backfill(body, one_tenant)
    continuation = message_body(backfill.continuation(datetime(2026, 11, 7)))
    assert continuation == (
        '{"accountId":"acct001","beginTime":"2026-11-07 00:00:00","endTime":"2026-11-10 23:59:59","dataType":"call"}'
    )
    again = parse_backfill(continuation, one_tenant)
    assert (again.tenant, again.end, again.data_type) == (backfill.tenant, backfill.end, backfill.data_type)
    without = parse_backfill('{"beginTime":"2026-11-01 00:00:00","endTime":"2026-11-10 23:59:59"}', SETTINGS)
    assert "accountId" not in json.loads(message_body(without.continuation(datetime(2026, 11, 7))))


def test_the_bill_steps_recording_messages_are_what_the_copier_reads(tmp_path: Path) -> None:
    handle = (tmp_path / "rec.jsonl").open("w", encoding="utf-8")
    recordings = Recordings(str(tmp_path / "rec.jsonl"), handle)
    rows = [
        {
            "call_id": "c1",
            "file_name": f"/{d}/0001.wav",
            "call_begin": f"2018-07-02 09:0{m}:00",
            "call_end": f"2018-07-02 09:0{m + 1}:00",
        }
        for d, m in (("a", 0), ("b", 2))
    ]
    for row in rows:
        descriptor = {
            "callId": row["call_id"],
            "fileName": row["file_name"],
            "callBegin": row["call_begin"],
            "callEnd": row["call_end"],
            "accountId": "acct001",
            "callDate": "2018-07-02",
            "originalFileName": "",
        }
        add_recording(recordings, descriptor, {**row, "agent": "ü"})
    handle.close()
    bodies = list(recording_messages(recordings, RID, "acct001"))
    assert len(bodies) == 2
    for body in bodies:
        wire = json.loads(body)
        # the keys queued before the models were shared: no late-recording fields, no nulls
        assert set(wire) == {
            "keyName", "responseId", "tenant", "accountId", "callId", "callBegin", "callEnd", "fileName",
            "originalFileName", "callDate", "ordinal", "count", "ordinalCertain", "urlOrdinal", "urlCount", "row",
        }  # fmt: skip
        assert None not in wire.values() and wire["row"]["agent"] == "ü"
        routed = route(QUEUES.recording, body, QUEUES)
        assert routed.kind is MessageKind.RECORDING and isinstance(routed.message, RecordingMessage)
        assert routed.message.model_dump(exclude_unset=True) == wire
    keys = {cast(RecordingMessage, route(QUEUES.recording, b, QUEUES).message).keys()[0] for b in bodies}
    assert len(keys) == 2  # two files of one call sharing a stem keep distinct keys


def test_a_late_recording_sent_again_is_what_the_copier_reads() -> None:
    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    requeued = FakeQueue()
    copier = RecordingCopier(
        ccfs=cast(Any, None),
        s3=None,
        progress=cast(Any, None),
        bucket="b",
        allowed_hosts=[],
        http=cast(Any, None),
        clock=lambda: now,
        requeue=requeued.send,
    )
    first = RecordingMessage.model_validate(
        {
            "responseId": RID,
            "tenant": "acct001",
            "callId": "c1",
            "callBegin": "2026-11-21 09:00:00",
            "callEnd": "2026-11-21 09:05:00",
            "fileName": "0001.wav",
            "notFoundSince": "2026-11-21T08:00:00Z",
            "notBefore": (now + timedelta(hours=1)).isoformat(),
            "lateRetries": 3,
            "hop": 4,
        }
    )
    assert copier.process(first)["outcome"] == "waiting"
    ((again, delay),) = zip(requeued.sent, requeued.delays, strict=True)
    body = message_body(again)
    wire = json.loads(body)
    assert delay == 900 and wire["hop"] == 5 and wire["lateRetries"] == 3
    assert wire["notFoundSince"] == "2026-11-21T08:00:00Z" and wire["notBefore"] == "2026-11-21T11:00:00Z"
    assert "keyName" not in wire and "urlOrdinal" not in wire  # absent, not null
    routed = route(QUEUES.recording, body, QUEUES)
    assert routed.message == again


# ---------------------------------------------------------------------------- routing


def _recording_body(**changes: Any) -> str:
    base = {
        "responseId": RID,
        "tenant": "acct001",
        "callId": "c1",
        "callBegin": "2018-07-02 09:00:00",
        "callEnd": "2018-07-02 09:01:00",
        "fileName": "0001.wav",
    }
    return json.dumps({**base, **changes})


def test_route_is_by_queue_then_that_queues_model() -> None:
    bill = json.dumps({"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert route(QUEUES.bill, bill, QUEUES).kind is MessageKind.BILL
    assert route(QUEUES.recording, _recording_body(), QUEUES).kind is MessageKind.RECORDING
    dead = route("https://sqs.us-east-1.amazonaws.com/123456789012/dlq-1", _recording_body(), QUEUES)
    assert dead.kind is MessageKind.DEAD_RECORDING and isinstance(dead.message, RecordingMessage)
    # a body with a bill's fields on the RecordingQueue is a recording message its model refuses
    with pytest.raises(RefusedMessage) as refused:
        route(QUEUES.recording, _recording_body(callId="", billFileName=BILL), QUEUES)
    assert refused.value.kind is MessageKind.RECORDING and refused.value.reason == (
        "callId: String should have at least 1 character"
    )
    with pytest.raises(RefusedMessage, match="responseId"):
        route(QUEUES.bill, json.dumps({"responseId": "../x", "billFileName": BILL, "tenant": "t"}), QUEUES)


def test_a_record_from_another_queue_is_the_message_its_body_parses_as() -> None:
    other = f"{ARN}someone-elses-queue"
    bill = json.dumps({"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert isinstance(route(other, bill, QUEUES).message, BillMessage)
    assert isinstance(route(other, _recording_body(), QUEUES).message, RecordingMessage)
    with pytest.raises(UnroutableMessage, match="someone-elses-queue is neither a bill nor a recording"):
        route(other, '{"hello": 1}', QUEUES)


def _event(source: str, body: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "bill_message.json").read_text())
    record = copy.deepcopy(event["Records"][0])
    record["eventSourceARN"] = source
    record["body"] = body
    return {"Records": [record]}


def test_the_download_handler_routes_each_queue_to_its_step_with_the_parsed_model(
    aws: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    module = load_handler("download")
    seen: list[tuple[str, Any]] = []

    def bill_step(record: Any, message: Any) -> dict[str, Any]:
        seen.append(("bill", message))
        return {}

    class Copier:
        tally = Tally()  # what the wiring emits after process()

        def process(self, message: Any, last_attempt: bool) -> dict[str, Any]:
            seen.append(("recording", message))
            return {}

    monkeypatch.setattr(module, "process_bill", bill_step)
    monkeypatch.setattr(module, "ccfs_client", lambda settings, tenant: None)
    monkeypatch.setattr(module, "recording_http", lambda settings: None)
    monkeypatch.setattr(module.wiring, "recording_copier", lambda settings, ccfs, http: Copier())
    monkeypatch.setattr(
        module.wiring, "settle_dead_recording", lambda settings, message, mid: seen.append(("dead", message)) or {}
    )
    arn = {name: f"{ARN}{url.rsplit('/', 1)[-1]}" for name, url in vars(aws).items() if name.endswith("_url")}
    bill = json.dumps({"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    # every body also carries the other kind's fields: only the queue decides
    both = _recording_body(billFileName=BILL)
    routes = [("bill_queue_url", bill), ("recording_queue_url", both), ("recording_dlq_url", both)]
    for source, body in ((arn[name], body) for name, body in routes):
        assert module.lambda_handler(_event(source, body), lambda_context) == {"batchItemFailures": []}
    assert [(kind, type(message)) for kind, message in seen] == [
        ("bill", BillMessage),
        ("recording", RecordingMessage),
        ("dead", RecordingMessage),
    ]


# ---------------------------------------------------------------------------- import-time settings


def test_import_time_settings_default_as_before_and_refuse_bad_values() -> None:
    assert import_setting("recording_concurrency", {}) == 1
    assert import_setting("idempotency_expiry_seconds", {}) == 8 * 3600
    assert import_setting("idempotency_table", {}) == ""
    assert import_setting("recording_concurrency", {"RECORDING_CONCURRENCY": "8"}) == 8
    with pytest.raises(ConfigError, match=r"RECORDING_CONCURRENCY: Input should be greater than or equal to 1"):
        import_setting("recording_concurrency", {"RECORDING_CONCURRENCY": "0"})
    with pytest.raises(ConfigError, match=r"IDEMPOTENCY_EXPIRY_SECONDS: Input should be a valid integer"):
        import_setting("idempotency_expiry_seconds", {"IDEMPOTENCY_EXPIRY_SECONDS": "8h"})
